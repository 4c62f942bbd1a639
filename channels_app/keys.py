"""The keys of a channel: entered one per line or as a JSON list, stored encrypted each, switched and deleted
one by one.

A channel of one key keeps it in Channel.key_encrypted alone, as before keys could be many: nothing else to
read on the relay's path. A channel of several keys holds every one as a ChannelKey row with its own status,
the first also in Channel.key_encrypted (what the balance query and the model list use). A change of a key
is recorded in the audit trail as a change of the channel (`keys[#position]`), with only the masked key.
"""

import json

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import audit
from billing.audit import Actor
from billing.models import AuditEntry
from channels_app import crypto, routing
from channels_app.models import Channel, ChannelKey

MANUAL_STATUSES = (Channel.Status.ENABLED, Channel.Status.DISABLED)


def parse_keys(text: object, whole: bool = False) -> list[str]:
    """The keys in `text`: a JSON list, else one per line (duplicates and blank lines dropped). With `whole`
    (a type whose key is a multi-line JSON document: Vertex), the text is one key unless it is a JSON list of
    such documents."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationError({"key": _("must be the upstream's non-empty API key")})
    text = text.strip()
    if whole:
        listed = _json_list(text)
        is_list = listed is not None and bool(listed) and all(isinstance(item, dict) for item in listed)
        keys = [json.dumps(item) for item in listed or ()] if is_list else [text]
    elif text.startswith("["):
        listed = _json_list(text)
        if listed is None or not all(isinstance(item, str) for item in listed):
            raise ValidationError({"key": _("starts with [ but is not a JSON list of keys (strings)")})
        keys = listed
    else:
        keys = text.split("\n")
    found = list(dict.fromkeys(key.strip() for key in keys if key.strip()))
    if not found:
        raise ValidationError({"key": _("must be the upstream's non-empty API key")})
    return found


def _json_list(text: str) -> list | None:
    try:
        listed = json.loads(text)
    except ValueError:
        return None
    return listed if isinstance(listed, list) else None


def check_keys(channel: Channel, keys: list[str]) -> None:
    """ValidationError naming the first key (by its position in the list) that the channel cannot use."""
    for number, key in enumerate(keys, start=1):
        problem = channel.key_problem(key)
        if problem:
            where = _("key %(number)d of %(count)d: ") % {"number": number, "count": len(keys)} if len(keys) > 1 else ""
            raise ValidationError({"key": f"{where}{problem}"})


def store(channel: Channel, keys: list[str], states: list[tuple[str, str]] | None = None) -> None:
    """Replace the saved channel's keys (in the caller's transaction): every key starts enabled, or with its
    (status, reason) of `states` (an imported channel's)."""
    ChannelKey.objects.filter(channel=channel).delete()
    if len(keys) > 1:
        states = states or [(Channel.Status.ENABLED, "")] * len(keys)
        ChannelKey.objects.bulk_create(
            ChannelKey(channel=channel, position=n, key_encrypted=crypto.encrypt(key), status=status, status_reason=why)
            for n, (key, (status, why)) in enumerate(zip(keys, states, strict=True))
        )


def add_keys(channel: Channel, text: object, actor: Actor) -> list[ChannelKey]:
    """Append the keys in `text` the channel does not hold yet; a channel of one key becomes one of several.
    The keys of the channel afterwards."""
    keys = parse_keys(text, whole=not channel.key_in_headers)
    check_keys(channel, keys)
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel.pk)
        held = channel.key_list()
        known = {_readable(row) for row in held}
        new = [key for key in keys if key not in known]
        if new and not held[0].pk:  # the one key of the channel becomes its key #0
            held[0].save()
        start = max(row.position for row in held) + 1
        added = ChannelKey.objects.bulk_create(
            ChannelKey(channel=channel, position=start + offset, key_encrypted=crypto.encrypt(key))
            for offset, key in enumerate(new)
        )
        _record(
            actor,
            channel,
            {f"keys[#{row.position}]": [None, _summary(row, key)] for row, key in zip(added, new, strict=True)},
        )
    routing.invalidate()
    return list(ChannelKey.objects.filter(channel=channel))


def set_status(channel: Channel, position: int, status: str, actor: Actor) -> ChannelKey:
    """Enable or disable one key by hand. The last enabled key cannot be disabled (disable the channel);
    enabling a key of an auto-disabled channel puts the channel back too."""
    if status not in MANUAL_STATUSES:
        raise ValidationError({"status": _("must be enabled or disabled")})
    with transaction.atomic():
        row = _locked_key(channel, position)
        others = ChannelKey.objects.filter(channel_id=channel.pk, status=Channel.Status.ENABLED).exclude(pk=row.pk)
        if status == Channel.Status.DISABLED and not others.exists():
            raise ValidationError({"status": _("this is the channel's last enabled key: disable the channel instead")})
        before = _summary(row)
        row.status, row.status_reason, row.changed_at = status, "", timezone.now()
        row.save(update_fields=["status", "status_reason", "changed_at"])
        _record(actor, channel, {f"keys[#{position}]": [before, _summary(row)]})
        if status == Channel.Status.ENABLED:
            Channel.objects.filter(pk=channel.pk, status=Channel.Status.AUTO_DISABLED).update(
                status=Channel.Status.ENABLED, status_reason=""
            )
    routing.invalidate()
    return row


def delete_key(channel: Channel, position: int, actor: Actor) -> None:
    """Delete one key; the channel's last key cannot go (delete the channel)."""
    with transaction.atomic():
        row = _locked_key(channel, position)
        rest = list(ChannelKey.objects.filter(channel_id=channel.pk).exclude(pk=row.pk))
        if not rest:
            raise ValidationError({"position": _("this is the channel's last key: delete the channel instead")})
        row.delete()
        # Channel.key_encrypted is the first key: what the balance query and the model list use.
        Channel.objects.filter(pk=channel.pk).update(key_encrypted=rest[0].key_encrypted)
        _record(actor, channel, {f"keys[#{position}]": [_summary(row), None]})
    routing.invalidate()


def enable_auto_disabled(channel_ids: list[int]) -> None:
    """An operator switched channels on: their keys that were auto-disabled get another chance too (in the
    caller's transaction)."""
    ChannelKey.objects.filter(channel_id__in=channel_ids, status=Channel.Status.AUTO_DISABLED).update(
        status=Channel.Status.ENABLED, status_reason="", changed_at=timezone.now()
    )


def _locked_key(channel: Channel, position: int) -> ChannelKey:
    Channel.objects.select_for_update().filter(pk=channel.pk).first()  # key changes of a channel in turn
    row = ChannelKey.objects.filter(channel_id=channel.pk, position=position).first()
    if row is None:
        raise Http404(f"channel {channel.pk} has no key #{position}")
    return row


def _readable(row: ChannelKey) -> str:
    try:
        return row.key
    except ValueError:
        return ""


def _summary(row: ChannelKey, plain: str | None = None) -> str:
    hint = crypto.mask(plain) if plain is not None else row.key_hint
    return f"{hint} {row.status}"


def _record(actor: Actor, channel: Channel, changes: dict) -> None:
    if changes:
        audit.record(actor, AuditEntry.Kind.CHANNEL, channel.pk, AuditEntry.Action.UPDATE, changes)
