"""Testing a channel: one tiny real chat request, timed, its answer judged, the time recorded.

The request goes through the channel's own adaptor and is sent and judged by relay.exchange, as the relay's
own attempts are, so a passing test means the relay can use the channel as configured (base URL, key, model
mapping, provider extras). The channel's status_code_mapping is left out: a test reports what the upstream
itself answered.
"""

import asyncio
from dataclasses import dataclass, replace

import orjson
from asgiref.sync import async_to_sync

from channels_app import healing
from channels_app.models import Channel
from channels_app.routing import ChannelInfo, channel_info
from relay.adaptors.base import RelayRequest, UpstreamFailed
from relay.exchange import ErrorAnswer, Exchange

PROBE_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class ProbeResult:
    success: bool
    time_ms: int
    message: str
    permanent: bool = False  # the failure means the channel's credential or account cannot serve
    position: int | None = None  # the key tested, of a channel of several keys
    keys: tuple["ProbeResult", ...] = ()  # a channel of several keys: the result of each key tested


Plan = list[tuple[ChannelInfo, str]] | ProbeResult  # what to send with each key to test, or why nothing


def probe_channel(channel: Channel) -> ProbeResult:
    """Test one channel; see probe_channels."""
    return probe_channels([channel])[0]


def probe_channels(channels: list[Channel]) -> list[ProbeResult]:
    """Test channels concurrently, a channel of several keys with each key not disabled by hand; results in the
    given order. Never raises for upstream problems.

    A channel (key) that answered gets its response time recorded (a failure's time says nothing about
    latency) and, if it had been auto-disabled, goes back into rotation. A failure that shows a dead
    credential auto-disables the key or channel, as it would on live traffic.
    """
    plans = [_plan(channel) for channel in channels]
    results = async_to_sync(_probe_all)(plans)
    for channel, plan, result in zip(channels, plans, results, strict=True):
        if result.success:
            Channel.objects.filter(pk=channel.pk).update(response_time_ms=result.time_ms)
            channel.response_time_ms = result.time_ms
        if not result.keys:
            if result.success:
                healing.auto_enable(channel.pk, result.message)
            elif result.permanent and channel.auto_ban:
                healing.auto_disable(channel_info(channel), f"channel test: {result.message}")
            continue
        assert not isinstance(plan, ProbeResult)  # a channel of several keys had its keys tested
        passed = [key.position for key in result.keys if key.success and key.position is not None]
        healing.auto_enable_keys(channel.pk, passed, result.message)
        for (info, _), key in zip(plan, result.keys, strict=True):
            if key.permanent and channel.auto_ban:
                healing.auto_disable_key(info, f"channel test: {key.message}")
    return results


def probe_all_channels() -> int:
    """The periodic channel test: every channel not disabled by hand. Returns how many passed."""
    found = list(Channel.objects.exclude(status=Channel.Status.DISABLED).order_by("id"))
    return sum(result.success for result in probe_channels(found))


def choose_test_model(channel: Channel) -> str | None:
    """The channel's test_model, else the first model it serves that is a name rather than a `prefix*`."""
    return channel.test_model or next((name for name in channel.models if not name.endswith("*")), None)


def _plan(channel: Channel) -> Plan:
    """What to send, worked out before the event loop (database and decryption are synchronous)."""
    model = choose_test_model(channel)
    if model is None:
        return ProbeResult(False, 0, "set test_model: the channel lists only prefix* models")
    try:
        info = channel_info(channel)
        tested = [row for row in channel.keys.all() if row.status != Channel.Status.DISABLED]
        return [(replace(info, key=row.key, key_position=row.position), model) for row in tested] or [(info, model)]
    except ValueError as unreadable:
        return ProbeResult(False, 0, str(unreadable))


async def _probe_all(plans: list[Plan]) -> list[ProbeResult]:
    async def one(plan: Plan) -> ProbeResult:
        if isinstance(plan, ProbeResult):
            return plan
        if plan[0][0].key_position is None:
            return await probe(*plan[0])
        return summed(await asyncio.gather(*(probe(*keyed) for keyed in plan)))

    return list(await asyncio.gather(*(one(plan) for plan in plans)))


def summed(keys: list[ProbeResult]) -> ProbeResult:
    """A channel of several keys passes when one of its keys does; the message names each key's result."""
    passed = [key for key in keys if key.success]
    message = "; ".join(f"key #{key.position}: {key.message}" for key in keys)
    time_ms = min((key.time_ms for key in passed), default=0)
    return ProbeResult(bool(passed), time_ms, message, keys=tuple(keys))


async def probe(info: ChannelInfo, model: str) -> ProbeResult:
    """Send `hi` with max_tokens 1 to `model` on the channel and judge the answer as the relay would. The
    verdict's message holds no secret of the channel: it reaches the status_reason and the manage log."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    request = RelayRequest("chat", model, body, orjson.dumps(body), stream=False, wants_usage=False)
    try:
        exchange = Exchange(info, request)
    except UpstreamFailed as unsupported:
        return ProbeResult(False, 0, unsupported.failure.message, position=info.key_position)
    result = await _judge(exchange, model)
    return replace(result, message=exchange.scrub(result.message), position=info.key_position)


async def _judge(exchange: Exchange, model: str) -> ProbeResult:
    waited = exchange.waited
    try:
        await exchange.prepare()
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            response = await exchange.answer(stream=False)
    except TimeoutError:
        return ProbeResult(False, waited.ms(), f"{model}: no answer within {PROBE_TIMEOUT_SECONDS:g} seconds")
    except ErrorAnswer as refused:
        failure = refused.failure
        message = f"{model}: upstream answered {failure.status}: {failure.message}"
        return ProbeResult(False, waited.ms(), message, healing.is_permanent(failure.status, failure.permanent))
    except UpstreamFailed as failed:  # not sent (the adaptor refused, Vertex's token request failed), or no answer
        failure = failed.failure
        return ProbeResult(
            False, waited.ms(), f"{model}: {failure.message}", healing.is_permanent(failure.status, failure.permanent)
        )
    try:
        exchange.adaptor.convert_response(exchange.request, response.content)
    except UpstreamFailed as failed:
        return ProbeResult(False, waited.ms(), f"{model}: unusable answer: {failed.failure.message}")
    return ProbeResult(True, waited.ms(), f"{model} answered in {waited.ms()} ms")
