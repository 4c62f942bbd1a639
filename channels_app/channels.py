"""Creating, changing, switching and deleting channels. Every write is validated with the model's own
validators and writes its audit entry (billing.audit) with the actor the caller names."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from billing import audit
from billing.audit import Actor, System
from billing.models import AuditEntry
from channels_app import channel_types, keys, overrides, routing
from channels_app.models import Channel
from gateway_project.existing import delete_or_404, save_existing

EDITABLE = {
    "name",
    "type",
    "key",
    "base_url",
    "models",
    "model_mapping",
    "status_code_mapping",
    "groups",
    "priority",
    "weight",
    "status",
    "auto_ban",
    "test_model",
    "config",
    "key_mode",
}
# What an audit entry records of a channel: every setting, the key only as "changed".
AUDITED = audit.Subject(
    AuditEntry.Kind.CHANNEL,
    Channel,
    ("key_encrypted", "status_reason", *sorted(EDITABLE - {"key"})),
    secret=frozenset({"key_encrypted"}),
    secret_values=(("config", overrides.HEADER_OVERRIDE),),
)


def create_channel(
    *, key: str, type: str = "openai", name: str = "", actor: Actor = System.MANAGE_PY, **fields
) -> Channel:
    """A new channel; `key` is the plain upstream secret, or several (one per line, or a JSON list), stored
    encrypted. ValidationError names the field."""
    _check_known(fields)
    channel = Channel(type=type, name=name or type)
    for field_name, value in fields.items():
        setattr(channel, field_name, value)
    entered = _set_keys(channel, key)
    _validate(channel, entered)
    with transaction.atomic():
        channel.save()
        keys.store(channel, entered)
        audit.created(actor, AUDITED, channel)
    return channel


def update_channel(channel: Channel, changes: dict, actor: Actor = System.MANAGE_PY) -> Channel:
    """Apply `changes` (fields of EDITABLE; `key` replaces the secret) and save; the save re-routes traffic.
    Channel.DoesNotExist when another request deleted the channel meanwhile."""
    _check_known(changes)
    nulls = sorted(name for name, value in changes.items() if value is None)
    if nulls:  # no channel field is nullable; some are blank, which Django's validation lets through as None
        raise ValidationError({name: _("must not be null") for name in nulls})
    for field_name, value in changes.items():
        if field_name != "key":
            setattr(channel, field_name, value)
    entered = _set_keys(channel, changes["key"]) if "key" in changes else None  # after the type: Vertex's differ
    _validate(channel, entered or [])
    enabled = changes.get("status") == Channel.Status.ENABLED
    if enabled:
        channel.status_reason = ""
    with audit.tracked(actor, AUDITED, channel.pk):
        save_existing(channel)
        if entered is not None:
            keys.store(channel, entered)
        if enabled:
            keys.enable_auto_disabled([channel.pk])
    return channel


def set_status(channel_ids: Iterable[int], status: str, reason: str = "", actor: Actor = System.MANAGE_PY) -> int:
    """Switch many channels at once; returns how many changed. A bulk UPDATE sends no post_save, so the
    routing index is invalidated here."""
    if status not in Channel.Status.values:
        raise ValidationError({"status": _("must be one of %(values)s") % {"values": ", ".join(Channel.Status.values)}})
    ids = list(channel_ids)
    with audit.tracked(actor, AUDITED, *ids):
        changed = Channel.objects.filter(pk__in=ids).update(status=status, status_reason=reason)
        if status == Channel.Status.ENABLED:
            keys.enable_auto_disabled(ids)
    routing.invalidate()
    return changed


def delete_channel(channel_id: int, actor: Actor) -> None:
    """Http404 when there is no such channel (or another request deleted it first)."""
    with audit.tracked(actor, AUDITED, channel_id, lock=False):
        delete_or_404(Channel.objects.all(), channel_id)


def _check_known(fields: dict) -> None:
    unknown = set(fields) - EDITABLE
    if unknown:
        raise ValidationError({name: _("not a channel field that can be set") for name in sorted(unknown)})


def _set_keys(channel: Channel, text: object) -> list[str]:
    """Set the channel's first key from the keys in `text` (the rest are stored after the channel is saved:
    keys.store); the keys."""
    entered = keys.parse_keys(text, whole=not channel.key_in_headers)
    channel.key = entered[0]
    return entered


def type_rule(channel_type: object) -> channel_types.Check | None:
    """The type's own check of a channel's key and config, if it has one (a Vertex key must be a service
    account's JSON)."""
    kind = channel_types.find(channel_type) if isinstance(channel_type, str) else None
    return kind.check if kind else None


def type_problems(channel_type: str, key: str, config: object) -> dict[str, str]:
    """What the channel type's own rules find wrong."""
    rule = type_rule(channel_type)
    return rule(key, config if isinstance(config, dict) else {}) if rule else {}


def _validate(channel: Channel, entered: list[str]) -> None:
    """The channel's fields, and each of the keys just `entered` (the stored one when none were)."""
    known = channel_types.slugs()
    if channel.type not in known:
        unknown = {"type": channel.type, "known": ", ".join(known)}
        raise ValidationError({"type": _("unknown channel type %(type)r; one of %(known)s") % unknown})
    if channel.groups == []:
        channel.groups = ["default"]
    if not channel.models:
        raise ValidationError({"models": _("list at least one model the channel serves")})
    channel.full_clean()
    keys.check_keys(channel, entered)
    if type_rule(channel.type):  # only these need the key decrypted
        for key in entered or [channel.key]:
            problems = type_problems(channel.type, key, channel.config)
            if problems:
                raise ValidationError(problems)
