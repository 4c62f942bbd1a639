"""Every channel with its status and its recent traffic (answers, failure rate, average latency), and the
channels auto-disabled recently with their reason: admin's dashboard, in a few grouped queries."""

from dataclasses import dataclass
from datetime import date

from billing import usage_overview
from billing.usage_overview import AutoDisabled, ChannelTraffic
from channels_app.models import Channel

NO_TRAFFIC = ChannelTraffic(answered=0, failed=0, average_ms=0)


@dataclass(frozen=True)
class ChannelHealth:
    channel: Channel
    traffic: ChannelTraffic


@dataclass(frozen=True)
class Disabled:
    event: AutoDisabled
    channel: Channel | None  # None: deleted since


def channel_health(since: date) -> list[ChannelHealth]:
    """Every channel, those out of rotation first (auto-disabled, then disabled), then by priority."""
    traffic = usage_overview.channel_traffic(since)
    channels = Channel.objects.order_by("status", "-priority", "id")
    return [ChannelHealth(channel, traffic.get(channel.pk, NO_TRAFFIC)) for channel in channels]


def recently_auto_disabled(since: date) -> list[Disabled]:
    events = usage_overview.auto_disabled_since(since)
    channels = Channel.objects.in_bulk({event.channel_id for event in events})
    return [Disabled(event, channels.get(event.channel_id)) for event in events]
