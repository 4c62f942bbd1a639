"""Upstream balance for channels whose provider exposes one: the OpenAI-style key-usage endpoints
(`/v1/dashboard/billing/subscription` and `/usage`), which OpenAI-compatible resellers and gateways such
as one-api, new-api and this one answer."""

from typing import Any

from asgiref.sync import async_to_sync

from channels_app.models import Channel
from channels_app.routing import channel_info
from relay.adaptors.base import UpstreamFailed, UpstreamRequest
from relay.adaptors.registry import adaptor_for
from relay.exchange import send

BALANCE_TYPES = {"openai", "custom", "lingyi"}
TIMEOUT_SECONDS = 15.0


class BalanceUnavailable(Exception):
    pass


def update_balance(channel: Channel) -> float:
    """Ask the upstream for what the channel's key has left (USD), store it and return it."""
    if channel.type not in BALANCE_TYPES:
        raise BalanceUnavailable(f"{channel.type} channels do not report a balance")
    balance = async_to_sync(_query)(channel)
    Channel.objects.filter(pk=channel.pk).update(balance=balance)
    channel.balance = balance
    return balance


async def _query(channel: Channel) -> float:
    info = channel_info(channel)
    adaptor = adaptor_for(info.type)
    assert adaptor is not None  # every BALANCE_TYPES entry is a registered adaptor's type
    base = (info.base_url or adaptor.default_base_url).removesuffix("/v1")
    headers = {"Authorization": f"Bearer {info.key}"}
    try:
        subscription = await _get_json(f"{base}/v1/dashboard/billing/subscription", headers)
        usage = await _get_json(f"{base}/v1/dashboard/billing/usage", headers)
        total = float(subscription["hard_limit_usd"])
        used_cents = float(usage["total_usage"])
    except (UpstreamFailed, ValueError, KeyError, TypeError):
        raise BalanceUnavailable("the upstream did not report a balance") from None
    return round(total - used_cents / 100, 6)


async def _get_json(url: str, headers: dict[str, str]) -> Any:
    """The JSON of a GET's answer (relay.exchange.send: UpstreamFailed when none came; ValueError if not JSON)."""
    return (await send(UpstreamRequest(url, headers, b"", "GET"), timeout=TIMEOUT_SECONDS)).json()
