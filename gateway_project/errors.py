"""One wording of validation errors for the management API and the manage.py commands."""

from django.core.exceptions import ValidationError


def describe(error: ValidationError) -> str:
    """`field: message; other: message`, naming each field when the error is per field."""
    if hasattr(error, "error_dict"):
        return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in error.message_dict.items())
    return "; ".join(error.messages)
