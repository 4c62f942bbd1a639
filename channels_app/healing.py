"""Channel health: auto-disable on credential/billing failures, a short rest after transient failures.

Auto-disable is written to the database and bumps the routing version, so every instance drops the
channel within SYNC_FREQUENCY (at once with Redis). The rest after transient failures is per process:
it only spares this process from hammering a struggling upstream.
"""

import logging
import time
from dataclasses import dataclass

from django.conf import settings

from channels_app import routing
from channels_app.routing import ChannelInfo
from relay.metrics import AUTO_DISABLED

log = logging.getLogger(__name__)


def is_permanent(status: int, flagged: bool) -> bool:
    """Does a failure show that the channel's credential or account cannot serve anyone?

    Decided only from what no client can steer: the status (401), and the adaptor's reading of the
    provider's structured error fields (`flagged`, UpstreamFailure.permanent), which a 403 needs as well.
    Never from the message, which may quote the client's input; and never on a 400, which judges the request.
    """
    return status != 400 and (status == 401 or flagged)


def auto_disable(channel: ChannelInfo, reason: str) -> bool:
    """Take the channel out of rotation (only an enabled channel with auto_ban on). True if it changed."""
    from billing import ledger
    from billing.models import Log
    from channels_app.models import Channel

    changed = Channel.objects.filter(pk=channel.id, status=Channel.Status.ENABLED, auto_ban=True).update(
        status=Channel.Status.AUTO_DISABLED, status_reason=reason[:500]
    )
    if changed:
        routing.invalidate()
        content = f"channel {channel.id} auto-disabled: {reason[:500]}"
        ledger.write(Log(type=Log.Type.MANAGE, channel_id=channel.id, content=content))
        AUTO_DISABLED.inc()
        log.warning("channel %s (%s) auto-disabled: %s", channel.id, channel.name, reason)
    return bool(changed)


def auto_enable(channel_id: int, message: str) -> bool:
    """Put an auto-disabled channel back after it passed a channel test. Manual disables stay."""
    from billing import ledger
    from billing.models import Log
    from channels_app.models import Channel

    changed = Channel.objects.filter(pk=channel_id, status=Channel.Status.AUTO_DISABLED).update(
        status=Channel.Status.ENABLED, status_reason=""
    )
    if changed:
        routing.invalidate()
        content = f"channel {channel_id} re-enabled: {message}"
        ledger.write(Log(type=Log.Type.MANAGE, channel_id=channel_id, content=content))
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
