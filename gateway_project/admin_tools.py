"""Shared Django admin behaviour."""

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest

from gateway_project.safe_text import UNSTORABLE, has_lone_surrogate


class StorableJSONField(forms.JSONField):
    """A JSON text box whose "\\ud800" (half a UTF-16 pair) is a form error, not a 500 from PostgreSQL."""

    def to_python(self, value: object) -> object:
        parsed = super().to_python(value)
        if has_lone_surrogate(parsed):
            raise ValidationError(f"This value {UNSTORABLE}.")
        return parsed

    def bound_data(self, data: object, initial: object) -> object:
        # Shown again as typed: written out anew, the surrogate itself would not encode into the page.
        bound = super().bound_data(data, initial)
        return InvalidJSONInput(data) if has_lone_surrogate(bound) else bound


# For ModelAdmin.formfield_overrides of admins with JSON fields.
STORABLE_JSON = {models.JSONField: {"form_class": StorableJSONField}}


class SaveChangedFieldsMixin:
    """On change, write only the columns the form changed.

    A full save would write back counters read when the page was submitted (quota, used_quota, ...), undoing
    whatever concurrent requests settled with F() meanwhile. `form_to_model` names form fields that set a
    differently named column.
    """

    form_to_model: dict[str, str] = {}

    def save_model(self, request: HttpRequest, obj: models.Model, form: forms.Form, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)  # type: ignore[misc]  # ModelAdmin's, later in the MRO
            return
        columns = {field.name for field in obj._meta.concrete_fields}
        changed = {self.form_to_model.get(name, name) for name in form.changed_data}
        obj.save(update_fields=sorted(changed & columns))
