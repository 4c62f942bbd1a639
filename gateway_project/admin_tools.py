"""Shared Django admin behaviour."""

from django import forms
from django.db import models
from django.http import HttpRequest


class SaveChangedFieldsMixin:
    """On change, write only the columns the form changed.

    A full save would write back counters read when the page was submitted (quota, used_quota, ...), undoing
    whatever concurrent requests settled with F() meanwhile. `form_to_model` names form fields that set a
    differently named column.
    """

    form_to_model: dict[str, str] = {}

    def save_model(self, request: HttpRequest, obj: models.Model, form: forms.Form, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        columns = {field.name for field in obj._meta.concrete_fields}
        changed = {self.form_to_model.get(name, name) for name in form.changed_data}
        obj.save(update_fields=sorted(changed & columns))
