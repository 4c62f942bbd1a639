"""Strict readers for environment variables: a malformed value fails loudly at start-up."""

import json
import os
import re
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


def envstr(name: str, default: str = "") -> str:
    value = os.environ.get(name)
    if value is None:
        file_path = os.environ.get(f"{name}_FILE")
        if file_path:
            with open(file_path, encoding="utf-8") as handle:
                return handle.read().strip()
        return default
    return value


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envjson(name: str, default: dict) -> dict:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        parsed = json.loads(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object")
    return parsed


def envlist(name: str, default: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list of some of `allowed`; set but empty is the empty list."""
    value = os.environ.get(name)
    if value is None:
        return default
    items = tuple(item.strip() for item in value.split(",") if item.strip())
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise ImproperlyConfigured(f"{name}: {', '.join(unknown)} not one of {', '.join(allowed)}")
    return items


def envint(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


# one-api/new-api operators configure MySQL as `user:pass@tcp(host:port)/db?parseTime=true`.
GO_DSN = re.compile(
    r"^(?P<user>[^:@]*)(?::(?P<password>[^@]*))?@tcp\((?P<host>[^:)]+)(?::(?P<port>\d+))?\)/(?P<name>[^?]*)"
)

ENGINES = {
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "mysql": "django.db.backends.mysql",
    "mariadb": "django.db.backends.mysql",
}


def database_from_dsn(dsn: str) -> dict:
    """Django DATABASES entry for a URL DSN (postgres://, mysql://) or a Go MySQL DSN."""
    go = GO_DSN.match(dsn)
    if go:
        return _database(
            "mysql", go["user"], unquote(go["password"] or ""), go["host"], go["port"] or "3306", go["name"]
        )
    parts = urlsplit(dsn)
    if parts.scheme not in ENGINES:
        raise ImproperlyConfigured("SQL_DSN must start with postgres://, mysql:// or be user:pass@tcp(host:port)/db")
    database = _database(
        parts.scheme,
        unquote(parts.username or ""),
        unquote(parts.password or ""),
        parts.hostname or "127.0.0.1",
        str(parts.port or ""),
        parts.path.lstrip("/"),
    )
    sslmode = dict(parse_qsl(parts.query)).get("sslmode")
    if sslmode and database["ENGINE"].endswith("postgresql"):
        database["OPTIONS"]["sslmode"] = sslmode
    return database


def _database(scheme: str, user: str, password: str, host: str, port: str, name: str) -> dict:
    engine = ENGINES[scheme]
    # A database that does not answer must fail a request within seconds, not hang it.
    options: dict = {"connect_timeout": 5}
    if engine.endswith("mysql"):
        options.update(charset="utf8mb4", init_command="SET sql_mode='STRICT_TRANS_TABLES'")
    return {
        "ENGINE": engine,
        "NAME": name,
        "USER": user,
        "PASSWORD": password,
        "HOST": host,
        "PORT": port,
        "OPTIONS": options,
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
    }
