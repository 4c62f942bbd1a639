"""Translatable names for models and fields whose English names Django derives from the code."""

from typing import cast

from django.db import models
from django.utils.functional import Promise


def name_model(
    model: type[models.Model], name: Promise | None = None, plural: Promise | None = None, /, **fields: Promise
) -> None:
    """Gives `model` (when `name` is given) and its `fields` (or properties) translatable names for the admin
    and forms.

    Set after the class rather than as `verbose_name=` in it: migrations record a declared verbose_name, and a
    label is no reason for a migration. Each label is the English Django derives, so English pages stay as
    they were."""
    opts = model._meta
    if name is not None:
        opts.verbose_name = name
        opts.verbose_name_plural = plural
    for field, label in fields.items():
        shown = getattr(model, field, None)
        if isinstance(shown, property):  # shown in the admin as a read-only field
            shown.fget.short_description = label  # type: ignore[union-attr]  # where Django's admin reads it
        else:
            opts.get_field(field).verbose_name = label


def labelled(value: str, label: Promise) -> str:
    """A TextChoices member with a translatable label: `ENABLED = labelled("enabled", _("Enabled"))`.

    Django's metaclass makes the member a str from the (value, label) pair; written as that pair, the type checker
    (without Django's stubs) would take the member for a tuple."""
    return cast(str, (value, label))
