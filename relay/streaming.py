"""Relaying a stream, and the billing rule for every way a stream can end.

Rules (the rule's name starts the log row's `content`):
- normal end: bill the upstream's usage, or count the prompt and the delivered text locally if it sent none;
- client disconnected: stop reading the upstream, bill what was delivered;
- upstream error or connection loss mid-stream: send an error event, bill what was delivered;
- idle longer than STREAMING_TIMEOUT: end the stream cleanly, bill what was delivered;
- failure before the first byte reached the client: nothing billed, the call may be retried (raised as
  UpstreamFailed from `start`, before any response header is sent).
"""

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import orjson
from django.conf import settings
from django.http import StreamingHttpResponse

from billing import quota, settlement
from billing.keys import KeyInfo
from relay import metrics, sse, upstream
from relay.adaptors.base import Adaptor, StreamConverter, UpstreamFailed, UpstreamFailure, Usage, scrub

NORMAL = "stream ended normally"
CLIENT_GONE = "client disconnected: billed what was delivered"
UPSTREAM_ERROR = "upstream failed mid-stream: billed what was delivered"
IDLE_TIMEOUT = "upstream idle longer than STREAMING_TIMEOUT: stream ended, billed what was delivered"
TOOL_CALL_OVERHEAD_TOKENS = 7


async def start(call, channel, adaptor: Adaptor, response: httpx.Response) -> StreamingHttpResponse:
    """Read up to the first chunk the client will get; failures until then are retryable."""
    relay = StreamRelay(call, channel, adaptor, response)
    try:
        await relay.prime()
    except TimeoutError:
        await upstream.close(response)
        raise UpstreamFailed(UpstreamFailure(504, "upstream sent no data within STREAMING_TIMEOUT")) from None
    except httpx.HTTPError:
        await upstream.close(response)
        raise UpstreamFailed(UpstreamFailure(502, "upstream connection failed before the first chunk")) from None
    except (UpstreamFailed, asyncio.CancelledError):  # cancelled: the client hung up while we waited
        await upstream.close(response)
        raise
    streamed = StreamingHttpResponse(relay.frames(), content_type="text/event-stream")
    streamed["Cache-Control"] = "no-cache"
    streamed["X-Accel-Buffering"] = "no"
    streamed["X-Gateway-Time-Ms"] = f"{call.gateway_ms():.2f}"
    metrics.OVERHEAD.observe(call.gateway_ms() / 1000)
    metrics.FIRST_TOKEN.observe(time.perf_counter() - call.started)
    return streamed


def settle_later(key: KeyInfo, charge: quota.Charge) -> None:
    """Settle in a task of its own, so a stream cancelled by a client disconnect is still billed."""
    metrics.QUOTA.labels(metrics.model_label(charge.model)).inc(charge.quota)
    settlement.settle_soon(key, charge)


class StreamRelay:
    def __init__(self, call, channel, adaptor: Adaptor, response: httpx.Response) -> None:
        self.call = call
        self.channel = channel
        self.response = response
        self.converter: StreamConverter = adaptor.stream_converter(call.request)
        upstream.lift_deadline(response)  # a stream is bounded by STREAMING_TIMEOUT between events instead
        self.payloads = sse.data_payloads(response.aiter_bytes())
        self.first: list[bytes] = []
        self.backlog: list[bytes] = []  # payloads read with the first event, not converted yet
        self.ended = False

    async def next_payloads(self) -> list[bytes]:
        """The payloads of the next upstream read, up to `[DONE]`; [] once the stream has ended."""
        async with asyncio.timeout(settings.STREAMING_TIMEOUT):
            payloads = await anext(self.payloads, None)
        if payloads is None:
            self.ended = True
            return []
        if sse.DONE in payloads:
            self.ended = True
            return payloads[: payloads.index(sse.DONE)]
        return payloads

    def converted(self, payloads: list[bytes]) -> tuple[list[bytes], UpstreamFailed | None]:
        """Our events for these payloads, and the failure that stopped them (the events before it still go)."""
        out: list[bytes] = []
        for payload in payloads:
            try:
                out.extend(self.converter.feed(payload))
            except UpstreamFailed as failed:
                return out, failed
        return out, None

    async def prime(self) -> None:
        """Read up to the first payload that gives the client an event; the rest of that read waits."""
        events = 0
        while not self.first and not self.ended:
            self.backlog = await self.next_payloads()
            events += len(self.backlog)
            while self.backlog and not self.first:
                self.first = self.converter.feed(self.backlog.pop(0))
        if not events:  # an empty body, or one that is no stream at all (an error object over several lines)
            raise UpstreamFailed(UpstreamFailure(502, "upstream ended the stream without sending any event"))

    async def relayed(self) -> AsyncIterator[bytes]:
        """Our events, one write per upstream read (the events that arrived together leave together)."""
        if self.first:
            yield sse.frames(self.first)
        payloads = self.backlog
        while True:
            out, failed = self.converted(payloads)
            if out:
                yield sse.frames(out)
            if failed is not None:
                raise failed
            if self.ended:
                break
            payloads = await self.next_payloads()
        tail = self.converter.finish()
        if tail:
            yield sse.frames(tail)

    async def frames(self) -> AsyncIterator[bytes]:
        ending = CLIENT_GONE  # unless the loop below gets to an end of its own
        try:
            tail = []
            try:
                async for framed in self.relayed():
                    yield framed
                ending = NORMAL
            except TimeoutError:
                ending = IDLE_TIMEOUT
            except (UpstreamFailed, httpx.HTTPError) as exc:
                ending = UPSTREAM_ERROR
                message = "upstream connection lost"
                if isinstance(exc, UpstreamFailed):
                    message = scrub(exc.failure.message, self.channel.key, self.response.request)
                if isinstance(exc, upstream.AnswerTooLarge):
                    message = str(exc)
                tail.append(
                    sse.frame(
                        orjson.dumps(
                            {
                                "error": {
                                    "message": message,
                                    "type": "upstream_error",
                                    "param": None,
                                    "code": "stream_interrupted",
                                }
                            }
                        )
                    )
                )
            if self.call.request.wants_usage and not self.converter.state.usage_sent:
                tail.append(sse.frame(await self.usage_chunk()))
            tail.append(sse.DONE_FRAME)
            for framed in tail:
                yield framed
        finally:
            await upstream.close(self.response)
            usage, counted = await self.final_usage()
            rule = ending if not counted or ending != NORMAL else f"{NORMAL}, no usage from upstream: counted locally"
            settle_later(self.call.key, self.call.charge(self.channel, usage, rule))
            metrics.LATENCY.labels(self.call.request.endpoint, "true").observe(time.perf_counter() - self.call.started)

    async def final_usage(self) -> tuple[Usage, bool]:
        """(usage, counted locally?) -- the upstream's figures when it sent them. Counting the prompt waits
        for a worker thread only when it is large or its encoding not built yet (Call.count_prompt)."""
        state = self.converter.state
        if state.usage is not None:
            return state.usage, False
        prompt_tokens = await self.call.count_prompt()
        usage = self.call.endpoint.local_usage(self.call.request, prompt_tokens, state.text)
        usage.completion_tokens += TOOL_CALL_OVERHEAD_TOKENS * state.max_tool_calls
        return usage, True

    async def usage_chunk(self) -> bytes:
        usage, _ = await self.final_usage()
        state = self.converter.state
        return orjson.dumps(
            {
                "id": state.chunk_id or f"chatcmpl-{self.call.request_id}",
                "object": "text_completion" if self.call.request.endpoint == "completions" else "chat.completion.chunk",
                "created": state.created,
                "model": self.call.request.model,
                "choices": [],
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                },
            }
        )
