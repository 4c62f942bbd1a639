"""Channel health: auto-disable on credential/billing failures, a short rest after transient failures.

Auto-disable is written to the database and bumps the routing version, so every instance drops the
channel within SYNC_FREQUENCY (at once with Redis). The rest after transient failures is per process:
it only spares this process from hammering a struggling upstream.
"""

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter

from channels_app import crypto, routing
from channels_app.routing import ChannelInfo

if TYPE_CHECKING:
    from billing.audit import System

log = logging.getLogger(__name__)

# Reported on /metrics with the relay's own metrics (relay.metrics.registry: the default registry, or the
# PROMETHEUS_MULTIPROC_DIR files every process writes).
AUTO_DISABLED = Counter("gateway_channels_auto_disabled_total", "Channels taken out of rotation automatically")


def is_permanent(status: int, flagged: bool) -> bool:
    """Does a failure show that the channel's credential or account cannot serve anyone?

    Decided only from what no client can steer: the status (401), and the adaptor's reading of the
    provider's structured error fields (`flagged`, UpstreamFailure.permanent), which a 403 needs as well.
    Never from the message, which may quote the client's input; and never on a 400, which judges the request.
    """
    return status != 400 and (status == 401 or flagged)


def auto_disable(channel: ChannelInfo, reason: str) -> bool:
    """Take the channel out of rotation (only an enabled channel with auto_ban on). True if it changed."""
    from billing.audit import System
    from channels_app.models import Channel

    changed = _switch(
        channel.id,
        System.AUTO_DISABLE,
        {"status": Channel.Status.ENABLED, "auto_ban": True},
        {"status": Channel.Status.AUTO_DISABLED, "status_reason": reason[:500]},
        f"channel {channel.id} auto-disabled: {reason[:500]}",
    )
    if changed:
        AUTO_DISABLED.inc()
        log.warning("channel %s (%s) auto-disabled: %s", channel.id, channel.name, reason)
    return changed


def auto_disable_key(channel: ChannelInfo, reason: str) -> bool:
    """Take the key `channel` carries (ChannelInfo.key_position) out of rotation, and the channel with it when
    that was its last enabled key. True if the key changed."""
    from billing import ledger
    from billing.models import Log
    from channels_app.models import Channel, ChannelKey

    position = channel.key_position
    keys = ChannelKey.objects.filter(channel_id=channel.id)
    with transaction.atomic():
        changed = keys.filter(position=position, status=Channel.Status.ENABLED).update(
            status=Channel.Status.AUTO_DISABLED, status_reason=reason[:500], changed_at=timezone.now()
        )
        if changed:
            content = f"channel {channel.id} key #{position} ({crypto.mask(channel.key)}) auto-disabled: {reason[:500]}"
            ledger.write(Log(type=Log.Type.MANAGE, channel_id=channel.id, content=content))
    if not changed:
        return False
    log.warning("channel %s (%s) key #%s auto-disabled: %s", channel.id, channel.name, position, reason)
    # Two requests may both see the last key go: auto_disable is conditional, one of them switches the channel.
    if not keys.filter(status=Channel.Status.ENABLED).exists():
        auto_disable(channel, f"every key is disabled; the last: {reason}")
    routing.invalidate()
    return True


def auto_enable_keys(channel_id: int, positions: list[int], message: str) -> int:
    """Put back the auto-disabled keys at `positions` that passed a channel test (manual disables stay), and the
    channel with them. How many keys came back."""
    from billing import ledger
    from billing.models import Log
    from channels_app.models import Channel, ChannelKey

    with transaction.atomic():
        back = ChannelKey.objects.filter(
            channel_id=channel_id, position__in=positions, status=Channel.Status.AUTO_DISABLED
        ).update(status=Channel.Status.ENABLED, status_reason="", changed_at=timezone.now())
        if back:
            content = f"channel {channel_id}: {back} key(s) re-enabled: {message}"
            ledger.write(Log(type=Log.Type.MANAGE, channel_id=channel_id, content=content))
    if positions:
        auto_enable(channel_id, message)
    if back:
        routing.invalidate()
    return back


def auto_enable(channel_id: int, message: str) -> bool:
    """Put an auto-disabled channel back after it passed a channel test. Manual disables stay."""
    from billing.audit import System
    from channels_app.models import Channel

    return _switch(
        channel_id,
        System.AUTO_ENABLE,
        {"status": Channel.Status.AUTO_DISABLED},
        {"status": Channel.Status.ENABLED, "status_reason": ""},
        f"channel {channel_id} re-enabled: {message}",
    )


def _switch(channel_id: int, actor: "System", current: dict, new: dict, content: str) -> bool:
    """Move the channel from `current` to `new` if it is there, with a manage log row and an audit entry in the
    same transaction; then every instance re-routes. Whether it moved."""
    from billing import audit, ledger
    from billing.models import Log
    from channels_app.channels import AUDITED
    from channels_app.models import Channel

    with audit.tracked(actor, AUDITED, channel_id):
        changed = Channel.objects.filter(pk=channel_id, **current).update(**new)
        if changed:
            ledger.write(Log(type=Log.Type.MANAGE, channel_id=channel_id, content=content))
    if changed:
        routing.invalidate()
    return bool(changed)


@dataclass
class _Streak:
    failures: int = 0
    resting_until: float = 0.0


class Rests:
    """Consecutive transient failures per channel in this process, and who is resting."""

    streaks: dict[int, _Streak] = {}

    @classmethod
    def failed(cls, channel_id: int) -> None:
        streak = cls.streaks.setdefault(channel_id, _Streak())
        streak.failures += 1
        if streak.failures >= settings.CHANNEL_FAILURE_THRESHOLD:
            streak.resting_until = time.monotonic() + settings.CHANNEL_COOLDOWN_SECONDS
            streak.failures = 0

    @classmethod
    def succeeded(cls, channel_id: int) -> None:
        cls.streaks.pop(channel_id, None)

    @classmethod
    def resting(cls) -> set[int]:
        now = time.monotonic()
        return {channel_id for channel_id, streak in cls.streaks.items() if streak.resting_until > now}
