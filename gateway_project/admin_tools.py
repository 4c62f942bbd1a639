"""Shared Django admin behaviour."""

import json
import re

from django import forms
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

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


class NameListField(forms.CharField):
    """A list of names typed as text: separated by commas or lines, or as a JSON array. Blank items are
    dropped and repeats kept once, in the order typed; the list is shown back comma-separated. What a name
    may be is the model's to say (its validators run on the parsed list)."""

    SEPARATORS = re.compile(r"[,\n]")
    default_error_messages = {
        "invalid_json": _("Enter names separated by commas or lines, or a JSON array of strings."),
    }

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 2, "cols": 60}))
        super().__init__(**kwargs)

    def prepare_value(self, value: object) -> object:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: object) -> list[str]:
        text = super().to_python(value)
        items = self.from_json(text) if text.lstrip().startswith("[") else self.SEPARATORS.split(text)
        return list(dict.fromkeys(item.strip() for item in items if item.strip()))

    def from_json(self, text: str) -> list[str]:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            raise ValidationError(self.error_messages["invalid_json"], code="invalid_json")
        if has_lone_surrogate(parsed):
            raise ValidationError(_("This value %(problem)s.") % {"problem": UNSTORABLE})
        return parsed

    def has_changed(self, initial: object, data: object) -> bool:
        try:
            return self.to_python(data) != (initial or [])
        except ValidationError:
            return True


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


def admin_sign_in(request: HttpRequest) -> HttpResponse:
    """Admin's login page: allauth's sign-in (its throttle, CAPTCHA and two-factor step apply), which comes back
    to where admin sent the browser, else to admin's index."""
    return redirect_to_login(request.GET.get("next") or reverse("admin:index"))
