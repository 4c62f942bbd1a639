"""Reading the source's column values, whatever type its driver returns them in."""

import json
from datetime import UTC, datetime
from typing import SupportsInt


def text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return value.decode()
    return str(value)


def names(value: object, separator: str = ",") -> list[str]:
    """Split a comma (or newline) list, trimmed, without empties or repeats, in order."""
    return list(dict.fromkeys(part.strip() for part in text(value).split(separator) if part.strip()))


def json_object(value: object) -> dict | None:
    """A JSON object from a text column; None when it is empty, not JSON or not an object."""
    try:
        parsed = json.loads(text(value) or "null")
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def moment(value: str | bytes | SupportsInt | None) -> datetime | None:
    seconds = int(value or 0)
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds > 0 else None


def number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None
