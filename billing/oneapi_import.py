"""Import a one-api or new-api database: channels, users, API keys, prices and redemption codes.

The source is read with a plain DB-API connection (sqlite3 read-only, MySQLdb, psycopg), never through
Django's connections, and only with `SELECT *`, so whatever columns a version has are what we see.

Type ids: one-api and new-api agree up to 25 (except 2, 4, 5) but diverge after that (one-api 35 is
Cohere, new-api 35 is MiniMax; one-api 42 is Vertex, new-api 41). The layout is recognised by the
columns only new-api has (auto_ban, status_code_mapping, test_model, ...); `flavour` overrides it.

Idempotence: users match by username, keys and redemption codes by the hash of their secret, channels
by the source id kept in `config["imported_from_oneapi_id"]` (plus the key's line for multi-key
channels), price entries by model name. What already exists is kept unless `update` is set: a second
run must never reset a balance that has moved here since the first.
"""

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from django.apps import apps
from django.contrib.auth.hashers import get_hasher
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models, transaction

from billing import pricing
from billing.models import PriceTable, Token, User, hash_key
from channels_app.models import Channel
from gateway_project.env import GO_DSN, database_from_dsn

MARKER = "imported_from_oneapi_id"
KEY_LINE = "imported_from_oneapi_key"
TABLES = ("users", "channels", "tokens", "options", "redemptions")
NEW_API_COLUMNS = {
    "auto_ban",
    "status_code_mapping",
    "test_model",
    "openai_organization",
    "other_info",
    "tag",
    "model_limits_enabled",
}


class SourceError(Exception):
    """The source database cannot be opened or read."""


# ---- the source database --------------------------------------------------------------------------------


@dataclass
class Source:
    connection: Any
    description: str
    tables: frozenset[str]
    quote: str = '"'

    def rows(self, table: str) -> tuple[set[str], list[dict]]:
        """(column names, rows as dicts); an absent table has neither."""
        if table not in self.tables:
            return set(), []
        cursor = self.connection.cursor()
        cursor.execute(f"SELECT * FROM {self.quote}{table}{self.quote}")  # table names are our constants
        names = [column[0].lower() for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        cursor.close()
        return set(names), rows

    def close(self) -> None:
        self.connection.close()


def open_source(dsn: str) -> Source:
    """A SQLite path (or sqlite:///path), a mysql:// or postgres:// URL, or a Go DSN user:pass@tcp(host)/db."""
    if dsn.startswith(("mysql://", "mariadb://", "postgres://", "postgresql://")) or GO_DSN.match(dsn):
        try:
            db = database_from_dsn(dsn)
        except ImproperlyConfigured as bad:
            raise SourceError(str(bad)) from None
        if db["ENGINE"].endswith("postgresql"):
            return _open_postgres(db)
        return _open_mysql(db)
    path = Path(dsn.removeprefix("sqlite://"))
    if not path.is_file():
        raise SourceError(f"no SQLite database at {path} (or give a mysql://, postgres:// or Go-form DSN)")
    try:
        connection = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as bad:
        raise SourceError(f"{path}: {bad}") from None
    return Source(connection, f"SQLite {path}", frozenset(names & set(TABLES)))


def _open_mysql(db: dict) -> Source:
    import MySQLdb

    try:
        connection = MySQLdb.connect(
            host=db["HOST"],
            port=int(db["PORT"] or 3306),
            user=db["USER"],
            password=db["PASSWORD"],
            database=db["NAME"],
            charset="utf8mb4",
        )
    except MySQLdb.Error as bad:
        raise SourceError(f"cannot connect to MySQL {db['HOST']}/{db['NAME']}: {bad}") from None
    cursor = connection.cursor()
    cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
    names = {row[0] for row in cursor.fetchall()}
    return Source(connection, f"MySQL {db['HOST']}/{db['NAME']}", frozenset(names & set(TABLES)), "`")


def _open_postgres(db: dict) -> Source:
    import psycopg

    options = {"sslmode": db["OPTIONS"]["sslmode"]} if "sslmode" in db["OPTIONS"] else {}
    try:
        connection = psycopg.connect(
            host=db["HOST"],
            port=db["PORT"] or 5432,
            user=db["USER"],
            password=db["PASSWORD"] or None,
            dbname=db["NAME"],
            **options,
        )
    except psycopg.Error as bad:
        raise SourceError(f"cannot connect to PostgreSQL {db['HOST']}/{db['NAME']}: {bad}") from None
    connection.read_only = True
    names = {
        row[0]
        for row in connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }
    return Source(connection, f"PostgreSQL {db['HOST']}/{db['NAME']}", frozenset(names & set(TABLES)))


# ---- channel types --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeRule:
    slug: str
    base_url: str = ""  # filled in when the source's base_url is empty and our adaptor's default would be wrong
    chat_path: str = ""  # mapped to `custom`: the full chat URL is base_url + chat_path (chat only)


def _compat(base_url: str) -> TypeRule:
    return TypeRule("openai", base_url)


SHARED_TYPES: dict[int, TypeRule] = {
    1: TypeRule("openai"),
    3: TypeRule("azure"),
    6: _compat("https://api.openaimax.com"),
    7: _compat("https://api.ohmygpt.com"),
    9: _compat("https://api.caipacity.com"),
    10: _compat("https://api.aiproxy.io"),
    12: _compat("https://api.api2gpt.com"),
    13: _compat("https://api.aigc2d.com"),
    14: TypeRule("anthropic"),
    16: TypeRule("zhipu"),
    19: _compat("https://ai.360.cn"),
    20: _compat("https://openrouter.ai/api"),
    22: _compat("https://fastgpt.run/api/openapi"),
    24: TypeRule("gemini"),
    25: _compat("https://api.moonshot.cn"),
    31: TypeRule("lingyi"),
}
MINIMAX = TypeRule("custom", "https://api.minimax.chat", "/v1/text/chatcompletion_v2")
NEW_API_TYPES: dict[int, TypeRule] = {
    **SHARED_TYPES,
    2: TypeRule("midjourney"),
    4: TypeRule("ollama"),
    5: TypeRule("midjourney"),
    8: TypeRule("custom"),  # new-api: base_url is the full URL, `{model}` allowed -- as ours
    26: TypeRule("zhipu"),
    27: _compat("https://api.perplexity.ai"),
    34: TypeRule("cohere"),
    35: MINIMAX,
    36: TypeRule("suno"),
    37: TypeRule("dify"),
    38: TypeRule("jina"),
    40: _compat("https://api.siliconflow.cn"),
    41: TypeRule("vertex"),
    42: _compat("https://api.mistral.ai"),
    43: _compat("https://api.deepseek.com"),
    48: _compat("https://api.x.ai"),
}
ONE_API_TYPES: dict[int, TypeRule] = {
    **SHARED_TYPES,
    2: _compat("https://oa.api2d.net"),
    4: _compat("https://api.closeai-proxy.xyz"),
    5: _compat("https://api.openai-sb.com"),
    8: TypeRule("openai"),  # one-api: base_url + the request path, i.e. an OpenAI-compatible base
    26: _compat("https://api.baichuan-ai.com"),
    27: MINIMAX,
    28: _compat("https://api.mistral.ai"),
    29: _compat("https://api.groq.com/openai"),
    30: TypeRule("ollama"),
    32: _compat("https://api.stepfun.com"),
    35: TypeRule("cohere"),
    36: _compat("https://api.deepseek.com"),
    39: _compat("https://api.together.xyz"),
    40: TypeRule("custom", "https://ark.cn-beijing.volces.com", "/api/v3/chat/completions"),
    41: TypeRule("custom", "https://api.novita.ai/v3/openai", "/chat/completions"),
    42: TypeRule("vertex"),
    44: _compat("https://api.siliconflow.cn"),
    45: _compat("https://api.x.ai"),
    50: TypeRule("openai"),
}
TYPES = {"new-api": NEW_API_TYPES, "one-api": ONE_API_TYPES}
UNSUPPORTED = {11: "PaLM", 15: "Baidu", 17: "Ali", 18: "Xunfei", 21: "AIProxy library", 23: "Tencent", 33: "AWS"}


def detect_flavour(columns: set[str]) -> str:
    return "new-api" if columns & NEW_API_COLUMNS else "one-api"


# ---- value helpers ---------------------------------------------------------------------------------------


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


def moment(value: object) -> datetime | None:
    seconds = int(value or 0)
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds > 0 else None


def bcrypt_usable() -> bool:
    """Django can check one-api's bcrypt hashes only with BCryptPasswordHasher enabled and bcrypt installed."""
    try:
        get_hasher("bcrypt")._load_library()
    except ValueError:
        return False
    return True


# ---- the report -----------------------------------------------------------------------------------------


@dataclass
class Tally:
    created: int = 0
    updated: int = 0
    kept: int = 0
    skipped: int = 0

    def line(self, table: str, dry_run: bool) -> str:
        would = "would be " if dry_run else ""
        return (
            f"{table}: {self.created} {would}created, {self.updated} {would}updated, {self.kept} kept,"
            f" {self.skipped} skipped"
        )


@dataclass
class Report:
    flavour: str
    dry_run: bool
    tallies: dict[str, Tally] = field(default_factory=lambda: {table: Tally() for table in TABLES})
    notes: list[str] = field(default_factory=list)  # skipped rows and lossy conversions: always shown
    actions: list[str] = field(default_factory=list)  # one line per write (or planned write)

    def summary(self) -> list[str]:
        return [self.tallies[table].line(table, self.dry_run) for table in TABLES]


# ---- the import -----------------------------------------------------------------------------------------


class Importer:
    """Reads everything from `source` and writes it here (in one transaction), or only plans it (dry run)."""

    def __init__(self, source: Source, *, dry_run: bool = False, update: bool = False, flavour: str = "auto"):
        self.source = source
        self.dry_run = dry_run
        self.update = update
        self.data = {table: source.rows(table) for table in TABLES}
        if flavour == "auto":
            flavour = detect_flavour(self.data["channels"][0] | self.data["tokens"][0])
        self.report = Report(flavour, dry_run)
        self.users_by_source_id: dict[int, User] = {}

    def run(self) -> Report:
        with contextlib.nullcontext() if self.dry_run else transaction.atomic():
            self.import_users()
            self.import_channels()
            self.import_tokens()
            self.import_redemptions()
        # Outside the transaction: pricing.save tells every instance to reload, which must follow the commit.
        self.import_prices()
        return self.report

    def note(self, message: str) -> None:
        self.report.notes.append(message)

    def live_rows(self, table: str) -> Iterator[dict]:
        """Rows not soft-deleted (new-api keeps deleted users, keys and codes with deleted_at set)."""
        for row in self.data[table][1]:
            if row.get("deleted_at"):
                self.report.tallies[table].skipped += 1
                continue
            yield row

    def sync(self, table: str, existing: models.Model | None, make: Callable[[], Any], values: dict, label: str):
        """Create the row, or bring an existing one to `values` when updating; returns the (planned) row."""
        tally = self.report.tallies[table]
        if existing is None:
            row = make()
            for name, value in values.items():
                setattr(row, name, value)
            tally.created += 1
            self.report.actions.append(f"create {label}")
            if not self.dry_run:
                row.save()
            return row
        changed = [name for name, value in values.items() if _current(existing, name) != value]
        if not changed or not self.update:
            tally.kept += 1
            return existing
        for name in changed:
            setattr(existing, name, values[name])
        tally.updated += 1
        self.report.actions.append(f"update {label}: {', '.join(changed)}")
        if not self.dry_run:
            existing.save(update_fields=["key_encrypted" if name == "key" else name for name in changed])
        return existing

    # -- users

    def import_users(self) -> None:
        rows = list(self.live_rows("users"))
        existing = _existing(User, "username", [text(row["username"]) for row in rows])
        keep_hashes = bcrypt_usable()
        unusable = 0
        for row in rows:
            username = text(row["username"])
            role = int(row.get("role") or 1)
            values = {
                "quota": int(row.get("quota") or 0),
                "used_quota": int(row.get("used_quota") or 0),
                "request_count": int(row.get("request_count") or 0),
                "group": text(row.get("group")) or "default",
                "is_staff": role >= 10,
                "is_superuser": role >= 100,
                "is_active": int(row.get("status") or 1) != 2,
                "email": text(row.get("email"))[:254],
            }
            password = text(row.get("password"))
            unusable += int(existing.get(username) is None and not (keep_hashes and password.startswith("$2")))
            make = partial(_new_user, username, password, keep_hashes)
            label = f"user {username!r} (quota {values['quota']})"
            self.users_by_source_id[int(row["id"])] = self.sync("users", existing.get(username), make, values, label)
        if unusable:
            self.note(
                f"{unusable} imported users have no usable password here (one-api stores bcrypt hashes; enable"
                " BCryptPasswordHasher with the bcrypt package to keep them): they must be given a new one"
            )

    # -- channels

    def import_channels(self) -> None:
        existing = {
            (int(c.config[MARKER]), int(c.config.get(KEY_LINE, 0))): c
            for c in Channel.objects.all()
            if isinstance(c.config, dict) and MARKER in c.config
        }
        types = TYPES[self.report.flavour]
        for row in self.data["channels"][1]:
            source_id, type_id = int(row["id"]), int(row.get("type") or 0)
            label = f"channel #{source_id} {text(row.get('name'))!r} (type {type_id})"
            rule = types.get(type_id)
            if rule is None:
                kind = UNSUPPORTED.get(type_id, "unknown")
                self.note(f"{label}: {kind} type, no adaptor here for {self.report.flavour} type {type_id}: skipped")
                self.report.tallies["channels"].skipped += 1
                continue
            values = self.channel_values(row, rule, label)
            keys = [text(row.get("key")).strip()] if rule.slug == "vertex" else names(row.get("key"), "\n")
            if not any(keys) and rule.slug == "vertex":
                keys = [text((json_object(row.get("config")) or {}).get("vertex_ai_adc")).strip()]
            if not any(keys):
                self.note(f"{label}: no key: skipped")
                self.report.tallies["channels"].skipped += 1
                continue
            for line, key in enumerate(keys):
                config = {**values["config"], MARKER: source_id, KEY_LINE: line}
                planned = {**values, "config": config, "key": key}
                try:
                    _validate_channel(planned)
                except ValidationError as invalid:
                    self.note(f"{label}: {'; '.join(invalid.messages)}: skipped")
                    self.report.tallies["channels"].skipped += 1
                    continue
                where = f" key {line + 1}/{len(keys)}" if len(keys) > 1 else ""
                target = f"{label}{where} as {rule.slug}"
                self.sync("channels", existing.get((source_id, line)), Channel, planned, target)

    def channel_values(self, row: dict, rule: TypeRule, label: str) -> dict:
        base_url = text(row.get("base_url")).strip().rstrip("/") or rule.base_url
        if rule.chat_path and base_url:
            base_url += rule.chat_path
        if not base_url and rule.slug in ("custom", "midjourney", "suno", "dify", "azure"):
            self.note(f"{label}: {rule.slug} needs a base URL and the source has none")
        status = {1: "enabled", 3: "auto_disabled"}.get(int(row.get("status") or 0), "disabled")
        other_info = json_object(row.get("other_info")) or {}
        return {
            "name": (text(row.get("name")) or f"oneapi-{row['id']}")[:128],
            "type": rule.slug,
            "base_url": base_url,
            "models": names(row.get("models")),
            "groups": names(row.get("group")) or ["default"],
            "priority": int(row.get("priority") or 0),
            "weight": max(0, int(row.get("weight") or 0)),
            "status": status,
            "status_reason": text(other_info.get("status_reason"))[:512] if status != "enabled" else "",
            "auto_ban": row.get("auto_ban") is None or bool(int(row["auto_ban"])),
            "test_model": text(row.get("test_model"))[:128],
            "model_mapping": self.string_map(row.get("model_mapping"), label, "model_mapping"),
            "status_code_mapping": self.status_map(row.get("status_code_mapping"), label),
            "config": channel_config(row, rule),
            "used_quota": int(row.get("used_quota") or 0),
            "balance": float(row["balance"]) if row.get("balance") else None,
            "response_time_ms": int(row.get("response_time") or 0),
            **({"created_at": moment(row.get("created_time"))} if moment(row.get("created_time")) else {}),
        }

    def string_map(self, value: object, label: str, what: str) -> dict[str, str]:
        parsed = json_object(value)
        if parsed is None:
            if text(value).strip() not in ("", "{}", "null"):
                self.note(f"{label}: {what} is not a JSON object: dropped")
            return {}
        kept = {str(k): v for k, v in parsed.items() if isinstance(v, str) and v}
        if len(kept) != len(parsed):
            self.note(f"{label}: {what} entries that are not name-to-name were dropped")
        return kept

    def status_map(self, value: object, label: str) -> dict[str, str]:
        mapping = {k: str(v) for k, v in (json_object(value) or {}).items()}
        kept = {k: v for k, v in mapping.items() if k.isdigit() and v.isdigit() and 100 <= int(v) <= 599}
        if len(kept) != len(mapping) or (json_object(value) is None and text(value).strip() not in ("", "null")):
            self.note(f"{label}: status_code_mapping entries that are not status-to-status were dropped")
        return kept

    # -- tokens

    def import_tokens(self) -> None:
        rows = list(self.live_rows("tokens"))
        bodies = {int(row["id"]): text(row["key"]).strip().removeprefix("sk-") for row in rows}
        existing = _existing(Token, "key_hash", [hash_key(body) for body in bodies.values()])
        for row in rows:
            body = bodies[int(row["id"])]
            user = self.users_by_source_id.get(int(row.get("user_id") or 0))
            label = f"key #{row['id']} {text(row.get('name'))!r} (sk-{body[:4]}...{body[-4:]})"
            if user is None or not body:
                self.note(f"{label}: {'its user is not imported' if body else 'no key'}: skipped")
                self.report.tallies["tokens"].skipped += 1
                continue
            values = self.token_values(row, label)
            make = partial(_new_token, user, body)
            self.sync("tokens", existing.get(hash_key(body)), make, values, f"{label} of {user.username!r}")

    def token_values(self, row: dict, label: str) -> dict:
        status = "enabled" if int(row.get("status") or 0) == 1 else "disabled"
        limits = None
        if "model_limits_enabled" in row:  # new-api
            if row["model_limits_enabled"]:
                limits = names(row.get("model_limits"))
                if not limits and status == "enabled":
                    # new-api: limits on with an empty list allows nothing; here an empty list allows all.
                    self.note(f"{label}: model limits allow no model there: imported disabled")
                    status = "disabled"
        else:  # one-api: `models`, empty = all
            limits = names(row.get("models"))
        allow_ips = names(row.get("allow_ips"), "\n") or names(row.get("subnet"))
        return {
            "name": text(row.get("name"))[:64],
            "status": status,
            "remain_quota": int(row.get("remain_quota") or 0),
            "used_quota": int(row.get("used_quota") or 0),
            "unlimited_quota": bool(row.get("unlimited_quota")),
            "expires_at": moment(row.get("expired_time")),
            "model_limits": limits or None,
            "allow_ips": allow_ips or None,
            "group": text(row.get("group")) or None,
            **({"created_at": moment(row.get("created_time"))} if moment(row.get("created_time")) else {}),
        }

    # -- prices

    def import_prices(self) -> None:
        options = {text(row.get("key")): text(row.get("value")) for row in self.data["options"][1]}
        tally = self.report.tallies["options"]
        current = pricing.current().as_dict()
        # Before any price was saved here the table holds only our defaults: the source's prices win then.
        overwrite = self.update or not PriceTable.objects.filter(pk=1).exists()
        changes: dict[str, Any] = {}
        for option, name in PRICE_OPTIONS.items():
            if option not in options:
                continue
            table = json_object(options[option])
            if table is None:
                self.note(f"option {option} is not a JSON object: skipped")
                tally.skipped += 1
                continue
            for model, value in table.items():
                if not isinstance(value, int | float) or isinstance(value, bool):
                    self.note(f"option {option}: {model!r} has no number: skipped")
                    tally.skipped += 1
                elif model not in current[name] or (overwrite and current[name][model] != value):
                    changes.setdefault(name, {})[model] = float(value)
                    self.count_price(tally, model in current[name], f"{option} {model} = {value:g}")
                else:
                    tally.kept += 1
        if options.get("QuotaPerUnit"):
            per_unit = _number(options["QuotaPerUnit"])
            if per_unit is None or per_unit <= 0:
                self.note(f"option QuotaPerUnit {options['QuotaPerUnit']!r} is not a positive number: skipped")
                tally.skipped += 1
            elif per_unit != current["quota_per_unit"] and overwrite:
                changes["quota_per_unit"] = int(per_unit)
                self.count_price(tally, True, f"QuotaPerUnit = {per_unit:g}")
            else:
                tally.kept += 1
        if changes and not self.dry_run:
            pricing.save(changes, merge=True)

    def count_price(self, tally: Tally, exists: bool, label: str) -> None:
        if exists:
            tally.updated += 1
        else:
            tally.created += 1
        self.report.actions.append(f"{'update' if exists else 'add'} price {label}")

    # -- redemptions

    def import_redemptions(self) -> None:
        rows = list(self.live_rows("redemptions"))
        try:
            redemption = apps.get_model("billing", "Redemption")
        except LookupError:
            if rows:
                self.note(f"redemptions: {len(rows)} codes not imported: this gateway has no redemption codes yet")
                self.report.tallies["redemptions"].skipped += len(rows)
            return
        codes = {int(row["id"]): text(row.get("key")).strip() for row in rows}
        existing = _existing(redemption, "code_hash", [hash_key(code) for code in codes.values()])
        for row in rows:
            code, status = codes[int(row["id"])], int(row.get("status") or 0)
            label = f"redemption code #{row['id']} {text(row.get('name'))!r} ({code[:4]}...{code[-4:]})"
            if not code or status not in (1, 3):
                # Here a code is unused or used; a disabled one imported as unused could be redeemed.
                self.note(f"{label}: {'disabled' if code else 'no code'}: skipped")
                self.report.tallies["redemptions"].skipped += 1
                continue
            values = {
                "name": text(row.get("name"))[:64] or "one-api",
                "quota": int(row.get("quota") or 0),
                "status": "unused" if status == 1 else "used",
                "created_by": self.users_by_source_id.get(int(row.get("user_id") or 0)),
                "used_by": self.users_by_source_id.get(int(row.get("used_user_id") or 0)),
                "used_at": moment(row.get("redeemed_time")) if status == 3 else None,
                **({"created_at": moment(row.get("created_time"))} if moment(row.get("created_time")) else {}),
            }
            make = partial(redemption, code_hash=hash_key(code), code_hint=f"{code[:4]}...{code[-4:]}")
            self.sync("redemptions", existing.get(hash_key(code)), make, values, label)


PRICE_OPTIONS = {
    "ModelRatio": "model_ratio",
    "CompletionRatio": "completion_ratio",
    "ModelPrice": "model_price",
    "GroupRatio": "group_ratio",
}


def channel_config(row: dict, rule: TypeRule) -> dict:
    """Provider extras: new-api keeps them in `other`, one-api (0.6+) in the `config` JSON."""
    legacy = json_object(row.get("config")) or {}
    other = text(row.get("other")).strip()
    config: dict[str, Any] = {}
    if rule.slug in ("azure", "gemini"):
        version = text(legacy.get("api_version")) or other
        if version:
            config["api_version"] = version
    elif rule.slug == "vertex":
        regions = json_object(other)
        region = text((regions or {}).get("default")) if regions else other or text(legacy.get("region"))
        if region:
            config["region"] = region
        if regions:
            config["regions"] = regions
        if legacy.get("vertex_ai_project_id"):
            config["project_id"] = text(legacy["vertex_ai_project_id"])
    if rule.slug == "openai" and text(row.get("openai_organization")):
        config["organization"] = text(row["openai_organization"])
    return config


def _new_user(username: str, password_hash: str, keep_hashes: bool) -> User:
    user = User(username=username)
    if keep_hashes and password_hash.startswith("$2"):
        user.password = f"bcrypt${password_hash}"
    else:
        user.set_unusable_password()
    return user


def _new_token(user: User, body: str) -> Token:
    token = Token(user=user)
    token.set_key(body)
    return token


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _existing(model: type[models.Model], field_name: str, values: list[str]) -> dict[str, Any]:
    """Rows whose `field_name` is one of `values`, by that value; in chunks, as SQLite caps query parameters."""
    found = {}
    for start in range(0, len(values), 500):
        for row in model.objects.filter(**{f"{field_name}__in": values[start : start + 500]}):
            found[getattr(row, field_name)] = row
    return found


def _current(row: models.Model, name: str) -> object:
    try:
        return getattr(row, name)
    except ValueError:  # a channel key that no longer decrypts: treat it as different
        return None


def _validate_channel(values: dict) -> None:
    channel = Channel(**{k: v for k, v in values.items() if k != "key"})
    channel.key = values["key"]
    channel.full_clean(exclude=["created_at"])
