"""Testing a channel: one tiny real chat request, timed, its answer judged, the time recorded.

The request goes through the channel's own adaptor, so a passing test means the relay can use the channel
as configured (base URL, key, model mapping, provider extras).
"""

import asyncio
import time
from dataclasses import dataclass, replace

import httpx
import orjson
from asgiref.sync import async_to_sync

from channels_app import healing
from channels_app.models import Channel
from channels_app.routing import ChannelInfo, channel_info
from relay import upstream
from relay.adaptors.base import Adaptor, RelayRequest, UpstreamFailed, UpstreamRequest, scrub
from relay.adaptors.registry import adaptor_for

PROBE_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class ProbeResult:
    success: bool
    time_ms: int
    message: str
    permanent: bool = False  # the failure means the channel's credential or account cannot serve


def probe_channel(channel: Channel) -> ProbeResult:
    """Test one channel; see probe_channels."""
    return probe_channels([channel])[0]


def probe_channels(channels: list[Channel]) -> list[ProbeResult]:
    """Test channels concurrently; results in the given order. Never raises for upstream problems.

    A channel that answered gets its response time recorded (a failure's time says nothing about
    latency) and, if it had been auto-disabled, goes back into rotation. A failure that shows a dead
    credential auto-disables the channel, as it would on live traffic.
    """
    results = async_to_sync(_probe_all)([_plan(channel) for channel in channels])
    for channel, result in zip(channels, results, strict=True):
        if result.success:
            Channel.objects.filter(pk=channel.pk).update(response_time_ms=result.time_ms)
            channel.response_time_ms = result.time_ms
            healing.auto_enable(channel.pk, result.message)
        elif result.permanent and channel.auto_ban:
            healing.auto_disable(channel_info(channel), f"channel test: {result.message}")
    return results


def probe_all_channels() -> int:
    """The periodic channel test: every channel not disabled by hand. Returns how many passed."""
    found = list(Channel.objects.exclude(status=Channel.Status.DISABLED).order_by("id"))
    return sum(result.success for result in probe_channels(found))


def choose_test_model(channel: Channel) -> str | None:
    """The channel's test_model, else the first model it serves that is a name rather than a `prefix*`."""
    return channel.test_model or next((name for name in channel.models if not name.endswith("*")), None)


def _plan(channel: Channel) -> tuple[ChannelInfo, str] | ProbeResult:
    """What to send, worked out before the event loop (database and decryption are synchronous)."""
    model = choose_test_model(channel)
    if model is None:
        return ProbeResult(False, 0, "set test_model: the channel lists only prefix* models")
    try:
        return channel_info(channel), model
    except ValueError as unreadable:
        return ProbeResult(False, 0, str(unreadable))


async def _probe_all(plans: list[tuple[ChannelInfo, str] | ProbeResult]) -> list[ProbeResult]:
    async def one(plan: tuple[ChannelInfo, str] | ProbeResult) -> ProbeResult:
        return plan if isinstance(plan, ProbeResult) else await probe(*plan)

    return list(await asyncio.gather(*(one(plan) for plan in plans)))


async def probe(info: ChannelInfo, model: str) -> ProbeResult:
    """Send `hi` with max_tokens 1 to `model` on the channel and judge the answer as the relay would. The
    verdict's message holds no secret of the channel: it reaches the status_reason and the manage log."""
    adaptor = adaptor_for(info.type)
    if adaptor is None:
        return ProbeResult(False, 0, f"channel type {info.type} is not supported yet")
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    request = RelayRequest("chat", model, body, orjson.dumps(body), stream=False, wants_usage=False)
    outgoing = None
    try:
        await adaptor.prepare(info)
        outgoing = adaptor.build_request(request, info)
        result = await _judge(adaptor, request, outgoing)
    except UpstreamFailed as refused:  # a rerank-only type (Jina) refuses chat; Vertex's token request failed
        failure = refused.failure
        permanent = healing.is_permanent(failure.status, failure.permanent)
        result = ProbeResult(False, 0, f"{model}: {failure.message}", permanent)
    return replace(result, message=scrub(result.message, info.key, outgoing))


async def _judge(adaptor: Adaptor, request: RelayRequest, outgoing: UpstreamRequest) -> ProbeResult:
    model = request.model
    client = upstream.client()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            response = await client.request(
                outgoing.method, outgoing.url, headers=outgoing.headers, content=outgoing.content
            )
    except TimeoutError:
        return ProbeResult(False, _ms(started), f"{model}: no answer within {PROBE_TIMEOUT_SECONDS:g} seconds")
    except httpx.HTTPError as exc:
        return ProbeResult(False, _ms(started), f"{model}: {upstream.failure_of(exc).message}")
    elapsed = _ms(started)
    if response.status_code >= 400:
        failure = adaptor.parse_error(response.status_code, response.content)
        permanent = healing.is_permanent(failure.status, failure.permanent)
        return ProbeResult(False, elapsed, f"{model}: upstream answered {failure.status}: {failure.message}", permanent)
    try:
        adaptor.convert_response(request, response.content)
    except UpstreamFailed as failed:
        return ProbeResult(False, elapsed, f"{model}: unusable answer: {failed.failure.message}")
    return ProbeResult(True, elapsed, f"{model} answered in {elapsed} ms")


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
