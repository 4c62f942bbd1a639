"""Relaying a stream, and the billing rule for every way a stream can end.

Rules (the rule's name starts the log row's `content`):
- normal end: bill the upstream's usage, or count the prompt and the delivered text locally if it sent none;
- client disconnected: stop reading the upstream, bill what was delivered;
- client stopped reading: a write to the client waited STREAMING_TIMEOUT (gateway_project.asgi_handlers times the
  writes and tells the response, `RelayedStream.client_stalled`): end the stream, bill what was delivered;
- upstream error or connection loss mid-stream: send an error event, bill what was delivered;
- idle longer than STREAMING_TIMEOUT: end the stream cleanly, bill what was delivered;
- one JSON body instead of a stream: relay it as a stream, billed as a whole answer (`relay_whole`);
- failure before the first byte reached the client: nothing billed, the call may be retried (raised as
  UpstreamFailed from `start`, before any response header is sent).

Backpressure: the relay reads the upstream only when the server has taken the previous write (Django awaits
the server's `send` before asking for the next chunk; uvicorn's `send` waits while the client's socket is
full), and aiohttp stops reading the upstream's socket once 512 KiB (twice its read_bufsize) wait unread, so
a client that stops reading holds a bounded buffer until the stall rule ends its stream.

However a stream ends, its usage is worked out and settled in a task of its own (`StreamRelay.account`), so
a client that hangs up meanwhile cannot cancel its charge: the first local count of a process builds the
tokenizer table (about a second), and an SDK closes its connection as soon as it has `[DONE]`.

What the client reads is written by its inbound format (relay.formats, a StreamWriter): OpenAI chunks framed as
`data:` lines, Anthropic's typed events, or -- when the request was passed through to a channel that speaks the
client's format -- the upstream's own bytes as they came, parsed on the side for usage and text only.
"""

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import orjson
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse

from billing import quota
from relay import metrics, sse, upstream
from relay.adaptors.base import (
    ErrorEventRelayed,
    RelayRequest,
    StreamConverter,
    StreamState,
    UpstreamFailed,
    UpstreamFailure,
    Usage,
    scrub,
)
from relay.adaptors.openai_format import json_or_none, usage_object
from relay.exchange import Exchange

NORMAL = "stream ended normally"
CLIENT_GONE = "client disconnected: billed what was delivered"
CLIENT_STALLED = "client stopped reading for STREAMING_TIMEOUT: stream ended, billed what was delivered"
UPSTREAM_ERROR = "upstream failed mid-stream: billed what was delivered"
IDLE_TIMEOUT = "upstream idle longer than STREAMING_TIMEOUT: stream ended, billed what was delivered"
WHOLE_ANSWER = "upstream answered the stream request with one JSON body, relayed as a stream"
TOOL_CALL_OVERHEAD_TOKENS = 7


async def start(call, exchange: Exchange, response: httpx.Response) -> HttpResponse:
    """Read up to the first chunk the client will get; failures until then are retryable."""
    relay = StreamRelay(call, exchange, response)
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
    if relay.whole is not None:
        await upstream.close(response)
        return await relay_whole(call, exchange, relay.whole)
    return stream_response(call, RelayedStream(relay))


def stream_response(call, response: HttpResponse) -> HttpResponse:
    """An answer to a stream request with its headers, its first byte counted in the metrics."""
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    response["X-Gateway-Time-Ms"] = f"{call.gateway_ms():.2f}"
    metrics.OVERHEAD.observe(call.gateway_ms() / 1000)
    metrics.FIRST_TOKEN.observe(time.perf_counter() - call.started)
    return response


def answered_whole(response: httpx.Response) -> bool:
    """Whether the upstream answered a stream request with one JSON body (no provider streams as JSON)."""
    return response.headers.get("Content-Type", "").partition(";")[0].strip().lower() == "application/json"


async def relay_whole(call, exchange: Exchange, content: bytes) -> HttpResponse:
    """An upstream that answered a stream request with one JSON body (LiteLLM's proxy does for mocked models):
    billed as a whole answer, then relayed as the stream the client asked for."""
    request = exchange.request
    body, reported, text = exchange.adaptor.convert_response(request, content)
    charging = call.whole_charge(exchange.channel, reported, text, WHOLE_ANSWER)
    charge = await asyncio.shield(call.settle_when_known(charging))
    answer = orjson.loads(body)
    created = answer.get("created") or int(time.time())
    state = StreamState(chunk_id=answer.get("id") or f"chatcmpl-{call.request_id}", created=created)
    chunk = ChunkShape(request, state.chunk_id, state.created)
    payloads = [chunk.of(choices) for choice in answer.get("choices") or () for choices in choice_chunks(choice)]
    writer = call.stream_writer()
    usage = charged_usage(charge) if writer.wants_usage(state) else None
    content = writer.frames(payloads) + writer.closing(state, usage, None)
    response = stream_response(call, HttpResponse(content, content_type="text/event-stream"))
    metrics.LATENCY.labels(call.request.endpoint, "true").observe(time.perf_counter() - call.started)
    return response


def charged_usage(charge: quota.Charge) -> Usage:
    return Usage(
        charge.prompt_tokens,
        charge.completion_tokens,
        charge.cache_read_tokens,
        charge.cache_write_5m_tokens,
        charge.cache_write_1h_tokens,
        charge.reasoning_tokens,
    )


def choice_chunks(choice: object) -> list[list[dict]]:
    """The `choices` of the chunks that stream one choice of a whole answer: its message as one delta (tool
    calls numbered, as deltas number them), then its finish reason; legacy completions' text as is."""
    if not isinstance(choice, dict):
        return []
    index, reason = choice.get("index") or 0, choice.get("finish_reason")
    if "text" in choice:
        return [[{"index": index, "text": choice["text"], "logprobs": None, "finish_reason": reason}]]
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    delta = {name: value for name, value in message.items() if value is not None}
    if isinstance(delta.get("tool_calls"), list):
        delta["tool_calls"] = [{"index": number, **call} for number, call in enumerate(delta["tool_calls"])]
    return [
        [{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}],
        [{"index": index, "delta": {}, "logprobs": None, "finish_reason": reason}],
    ]


def chunk_object(request: RelayRequest) -> str:
    return "text_completion" if request.endpoint == "completions" else "chat.completion.chunk"


class ChunkShape:
    """The envelope of the chunks the relay writes itself: the answer's id and creation time, the model the
    client asked for, and `"usage": null` in every chunk before a usage chunk, as OpenAI's have."""

    def __init__(self, request: RelayRequest, chunk_id: str, created: int) -> None:
        self.request = request
        self.object = chunk_object(request)
        self.id = chunk_id
        self.created = created

    def of(self, choices: list[dict]) -> bytes:
        chunk = {**self.envelope(), "choices": choices}
        if self.request.wants_usage:
            chunk["usage"] = None
        return orjson.dumps(chunk)

    def usage(self, usage: Usage) -> bytes:
        return orjson.dumps({**self.envelope(), "choices": [], "usage": usage_object(usage)})

    def envelope(self) -> dict:
        return {"id": self.id, "object": self.object, "created": self.created, "model": self.request.model}


class RelayedStream(StreamingHttpResponse):
    """A relayed stream's response. The server tells it when its client stopped reading; closing it settles
    a stream whose iteration never started (the client left before the first write)."""

    def __init__(self, relay: "StreamRelay") -> None:
        super().__init__(relay.frames(), content_type="text/event-stream")
        self.relay = relay

    def client_stalled(self) -> None:
        """A write waited STREAMING_TIMEOUT: the server ends the response (its iterator is closed next)."""
        self.relay.ending = self.relay.ending or CLIENT_STALLED

    def close(self) -> None:
        self.relay.account()
        super().close()


class StreamRelay:
    def __init__(self, call, exchange: Exchange, response: httpx.Response) -> None:
        self.call = call
        self.channel = exchange.channel
        self.response = response
        self.converter: StreamConverter = exchange.adaptor.stream_converter(exchange.request)
        self.writer = call.stream_writer()
        upstream.lift_deadline(response)  # a stream is bounded by STREAMING_TIMEOUT between events instead
        chunks = exchange.adaptor.stream_bytes(response.aiter_bytes())
        # A passed-through stream: the bytes read and not yet written, relayed instead of converted events.
        self.unwritten: list[bytes] | None = None
        if self.writer.relays_bytes:
            self.unwritten = []
            chunks = recorded(chunks, self.unwritten)
        self.payloads = sse.data_payloads(chunks)
        self.first: list[bytes] = []
        self.backlog: list[bytes] = []  # payloads read with the first event, not converted yet
        self.ended = False
        self.whole: bytes | None = None  # the upstream's answer, when it was one JSON object and no stream
        self.ending: str | None = None  # how the stream ended, once it has
        self.delivered = 0  # characters of the converter's text in the writes the server has taken
        self.counting: asyncio.Task | None = None
        self.accounted = False
        self.unremembered = call.native and call.inbound.stores_answers  # the answer's id is not noted yet

    def written(self, payloads: list[bytes]) -> bytes:
        """What the client gets for these converted payloads: the writer's frames, or the upstream's bytes."""
        if self.unwritten is None:
            return self.writer.frames(payloads) if payloads else b""
        data = b"".join(self.unwritten)
        self.unwritten.clear()
        return data

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
        """Read up to the first payload that gives the client an event; the rest of that read waits. An
        upstream whose whole body was one JSON object that gave no event is an answer, not a stream (`whole`)."""
        read: list[bytes] = []
        while not self.first and not self.ended:
            self.backlog = await self.next_payloads()
            read += self.backlog
            while self.backlog and not self.first:
                self.first = self.converter.feed(self.backlog.pop(0))
        if not read:  # an empty body, or one that is no stream at all (an error object over several lines)
            raise UpstreamFailed(UpstreamFailure(502, "upstream ended the stream without sending any event"))
        if not self.first and len(read) == 1 and isinstance(json_or_none(read[0]), dict):
            self.whole = read[0]

    async def relayed(self) -> AsyncIterator[bytes]:
        """Our events, one write per upstream read (the events that arrived together leave together)."""
        if self.first:
            if self.unremembered:
                await self.remember_answer()
            yield self.written(self.first)
        payloads = self.backlog
        while True:
            out, failed = self.converted(payloads)
            written = self.written(out)
            if written:
                if self.unremembered:
                    await self.remember_answer()
                yield written
            if failed is not None:
                raise failed
            if self.ended:
                break
            payloads = await self.next_payloads()
        written = self.written(self.converter.finish())
        if written:
            yield written

    async def remember_answer(self) -> None:
        """Note who owns an answer the upstream stores (relay.formats: `stores_answers`) before the client can
        read its id, so that the client's next call on it finds it."""
        answer_id = self.converter.state.chunk_id
        if answer_id:
            self.unremembered = False
            await self.call.inbound.remember(self.call.key, self.channel, self.call.request, answer_id)

    async def frames(self) -> AsyncIterator[bytes]:
        try:
            failure = None
            try:
                async for framed in self.relayed():
                    yield framed
                    self.delivered = self.converter.state.text_parts.size
                self.ending = NORMAL
            except TimeoutError:
                self.ending = IDLE_TIMEOUT
            except (UpstreamFailed, httpx.HTTPError) as exc:
                self.ending = UPSTREAM_ERROR
                if not isinstance(exc, ErrorEventRelayed):
                    failure = interruption(exc, self.channel.key, self.response.request)
            state = self.converter.state
            usage = None
            if self.writer.wants_usage(state):
                usage, _ = await asyncio.shield(self.usage())
            closing = self.writer.closing(state, usage, failure)
            if closing:
                yield closing
        finally:
            # Nothing awaited here: a client that hangs up now would cancel it (the charge is a task's).
            self.account()

    def account(self) -> None:
        """Settle the stream once, however it ended (a stream not ended by the loop above lost its client)."""
        if self.accounted:
            return
        self.accounted = True
        self.call.settle_when_known(self.charge(self.ending or CLIENT_GONE))
        metrics.LATENCY.labels(self.call.request.endpoint, "true").observe(time.perf_counter() - self.call.started)

    async def charge(self, ending: str) -> quota.Charge:
        await upstream.close(self.response)
        usage, counted = await self.usage()
        rule = f"{NORMAL}, no usage from upstream: counted locally" if counted and ending == NORMAL else ending
        return self.call.charge(self.channel, usage, rule)

    def usage(self) -> asyncio.Task:
        """(usage, counted locally?), worked out once for the usage chunk and the charge, in a task: a client
        that hangs up while the usage chunk waits for it must not cancel the charge's count."""
        if self.counting is None:
            self.counting = asyncio.ensure_future(self.final_usage())
        return self.counting

    async def final_usage(self) -> tuple[Usage, bool]:
        """The upstream's figures when it sent them, else the delivered text counted locally (on a worker thread
        when large), with the input the upstream reported on the way if it did. A write the server had not taken
        when the stream ended never left: a server like uvicorn waits for room in the socket before it writes."""
        state = self.converter.state
        text = state.text if state.usage is None else ""
        if len(text) > self.delivered:
            text = text[: self.delivered]
        usage, counted = await self.call.usage_of(state.usage, text, state.input_usage)
        if counted:
            usage.completion_tokens += TOOL_CALL_OVERHEAD_TOKENS * state.max_tool_calls
        return usage, counted


async def recorded(chunks: AsyncIterator[bytes], into: list[bytes]) -> AsyncIterator[bytes]:
    """The chunks, each also appended to `into` as it is read."""
    async for chunk in chunks:
        into.append(chunk)
        yield chunk


def interruption(exc: Exception, key: str, sent: httpx.Request) -> UpstreamFailure:
    """Why a stream the upstream broke off ended (the channel's secrets scrubbed from it), for its error event."""
    if isinstance(exc, UpstreamFailed):
        return UpstreamFailure(502, scrub(exc.failure.message, key, sent), exc.failure.type, exc.failure.code)
    message = str(exc) if isinstance(exc, upstream.AnswerTooLarge) else "upstream connection lost"
    return UpstreamFailure(502, message)
