"""Channels: one per key line of a source channel (one channel with all its keys for a new-api multi-key
channel), its type mapped by the numbers our adaptors declare (channels_app.channel_types), provider extras
from the columns each version keeps them in."""

from typing import Any

from django.core.exceptions import ValidationError

from channels_app import channel_types, overrides
from channels_app.channel_types import OldType
from channels_app.keys import check_keys, store
from channels_app.models import Channel
from gateway_project.oneapi_import.run import Run
from gateway_project.oneapi_import.values import json_object, moment, names, text

MARKER = "imported_from_oneapi_id"
KEY_LINE = "imported_from_oneapi_key"
# new-api's statuses of a channel, and of each key of a multi-key channel (channel_info.multi_key_status_list).
STATUSES = {1: "enabled", 3: "auto_disabled"}  # any other: disabled by hand
# Source types no adaptor here serves, named in the notes.
UNSUPPORTED = {11: "PaLM", 15: "Baidu", 18: "Xunfei", 21: "AIProxy library", 23: "Tencent"}


class ChannelImport(Run):
    def import_channels(self) -> None:
        existing = {
            (int(c.config[MARKER]), int(c.config.get(KEY_LINE, 0))): c
            for c in Channel.objects.all()
            if isinstance(c.config, dict) and MARKER in c.config
        }
        types = channel_types.old_types(self.report.flavour)
        for row in self.data["channels"][1]:
            source_id, type_id = int(row["id"]), int(row.get("type") or 0)
            label = f"channel #{source_id} {text(row.get('name'))!r} (type {type_id})"
            if type_id not in types:
                kind = UNSUPPORTED.get(type_id, "unknown")
                self.note(f"{label}: {kind} type, no adaptor here for {self.report.flavour} type {type_id}: skipped")
                self.report.tallies["channels"].skipped += 1
                continue
            slug, old = types[type_id]
            values = self.channel_values(row, slug, old, label)
            keys = [text(row.get("key")).strip()] if slug == "vertex" else names(row.get("key"), "\n")
            if not any(keys) and slug == "vertex":
                keys = [text((json_object(row.get("config")) or {}).get("vertex_ai_adc")).strip()]
            if not any(keys):
                self.note(f"{label}: no key: skipped")
                self.report.tallies["channels"].skipped += 1
                continue
            info = json_object(row.get("channel_info")) or {}
            if info.get("is_multi_key") and len(keys) > 1:
                self.import_multi_key(row, values, keys, info, existing.get((source_id, 0)), f"{label} as {slug}")
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
                target = f"{label}{where} as {slug}"
                self.sync("channels", existing.get((source_id, line)), Channel, planned, target)

    def import_multi_key(self, row: dict, values: dict, found: list[str], info: dict, existing, label: str) -> None:
        """A new-api multi-key channel: one channel with every key, each key's status and reason, and its mode."""
        config = {**values["config"], MARKER: int(row["id"])}
        mode = "polling" if info.get("multi_key_mode") == "polling" else "random"
        planned = {**values, "config": config, "key": found[0], "key_mode": mode}
        try:
            _validate_channel(planned)
            check_keys(Channel(type=values["type"]), found)
        except ValidationError as invalid:
            self.note(f"{label}: {'; '.join(invalid.messages)}: skipped")
            self.report.tallies["channels"].skipped += 1
            return
        statuses, reasons = _map(info.get("multi_key_status_list")), _map(info.get("multi_key_disabled_reason"))
        states = [
            (STATUSES.get(int(statuses.get(str(n)) or 1), "disabled"), text(reasons.get(str(n)))[:512])
            for n in range(len(found))
        ]
        channel = self.sync("channels", existing, Channel, planned, f"{label} with {len(found)} keys ({mode})")
        if not self.dry_run and (existing is None or self.update):
            store(channel, found, states)

    def channel_values(self, row: dict, slug: str, old: OldType, label: str) -> dict:
        base_url = text(row.get("base_url")).strip().rstrip("/") or old.base_url
        if old.chat_path and base_url:
            base_url += old.chat_path
        if not base_url and slug in ("custom", "midjourney", "suno", "dify", "azure"):
            self.note(f"{label}: {slug} needs a base URL and the source has none")
        status = STATUSES.get(int(row.get("status") or 0), "disabled")
        other_info = json_object(row.get("other_info")) or {}
        return {
            "name": (text(row.get("name")) or f"oneapi-{row['id']}")[:128],
            "type": slug,
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
            "config": {**channel_config(row, slug), **self.channel_overrides(row, label)},
            "used_quota": int(row.get("used_quota") or 0),
            "balance": float(row["balance"]) if row.get("balance") else None,
            "response_time_ms": int(row.get("response_time") or 0),
            **({"created_at": moment(row.get("created_time"))} if moment(row.get("created_time")) else {}),
        }

    def channel_overrides(self, row: dict, label: str) -> dict[str, dict]:
        """new-api's `param_override` and `header_override` columns, each kept when this gateway accepts it."""
        kept = {}
        for name in (overrides.PARAM_OVERRIDE, overrides.HEADER_OVERRIDE):
            value = json_object(row.get(name))
            problems = overrides.problems({name: value})
            if value is None and text(row.get(name)).strip() not in ("", "{}", "null"):
                self.note(f"{label}: {name} is not a JSON object: dropped")
            elif value and problems:
                self.note(f"{label}: {name} dropped: {'; '.join(problems)}")
            elif value:
                kept[name] = value
        return kept

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


def channel_config(row: dict, slug: str) -> dict:
    """Provider extras: new-api keeps them in `other`, one-api (0.6+) in the `config` JSON."""
    legacy = json_object(row.get("config")) or {}
    other = text(row.get("other")).strip()
    config: dict[str, Any] = {}
    if slug in ("azure", "gemini"):
        version = text(legacy.get("api_version")) or other
        if version:
            config["api_version"] = version
    elif slug == "vertex":
        regions = json_object(other)
        region = text((regions or {}).get("default")) if regions else other or text(legacy.get("region"))
        if region:
            config["region"] = region
        if regions:
            config["regions"] = regions
        if legacy.get("vertex_ai_project_id"):
            config["project_id"] = text(legacy["vertex_ai_project_id"])
    if slug == "openai" and text(row.get("openai_organization")):
        config["organization"] = text(row["openai_organization"])
    return config


def _map(value: object) -> dict:
    """A map inside channel_info, by key index (as text): JSON maps' keys are text."""
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _validate_channel(values: dict) -> None:
    channel = Channel(**{k: v for k, v in values.items() if k != "key"})
    channel.key = values["key"]
    channel.full_clean(exclude=["created_at"])
