"""A fake Anthropic Messages API on 127.0.0.1 (random port) that speaks the real wire format.

It answers `POST /v1/messages` with `REPLY` (or a tool call when a behaviour asks for one), as a whole
message or as the typed event stream (message_start ... message_stop, with a ping in between), with
the usage Anthropic reports: input and cache tokens at message_start, output tokens at message_delta.
Requests without the expected `x-api-key` get Anthropic's authentication error. `POST /v1/messages/count_tokens`
answers COUNTED_TOKENS. Every request's bytes and every answer's bytes are recorded (`requests`, `answers`).
"""

import json
from dataclasses import dataclass, field

from aiohttp import web

API_KEY = "sk-ant-upstream-secret"
MESSAGE_ID = "msg_01XyZfake"
REPLY_PIECES = ["Hel", "lo from", " Claude", "!"]
REPLY = "".join(REPLY_PIECES)
INPUT_TOKENS = 25
CACHE_READ_TOKENS = 5
PROMPT_TOKENS = INPUT_TOKENS + CACHE_READ_TOKENS  # what an OpenAI client is told the prompt cost
OUTPUT_TOKENS = 9
# A behaviour with `cache_writes` also writes input to the prompt cache, for 5 minutes and for an hour.
CACHE_WRITE_5M_TOKENS = 40
CACHE_WRITE_1H_TOKENS = 60
TOOL_TEXT = "Let me check."
TOOL_ID = "toolu_01A"
TOOL_NAME = "lookup_weather"
TOOL_ARGUMENT_PIECES = ['{"city": "Lis', 'bon"}']
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
COUNTED_TOKENS = 1234


@dataclass
class Behaviour:
    status: int = 200
    body: dict | None = None  # a JSON body to answer with instead of a message
    tool_call: bool = False  # answer with a text block and a tool_use block
    error_after: int | None = None  # stream: send an overloaded error event after this many text deltas
    cache_writes: bool = False  # usage reports cache writes; a stream's message_delta repeats the input counts


@dataclass
class Recorded:
    path: str
    headers: dict
    body: dict
    raw: bytes = b""


@dataclass
class FakeAnthropic:
    script: list[Behaviour] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    answers: list[bytes] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()
        self.answers.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        self.requests.append(Recorded(request.path, dict(request.headers), body, raw))
        behaviour = self.script.pop(0) if self.script else Behaviour()
        if request.headers.get("x-api-key") != API_KEY:
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            return web.json_response({"type": "error", "error": error}, status=401)
        if behaviour.status != 200 or behaviour.body is not None:
            return web.json_response(behaviour.body or {}, status=behaviour.status)
        if request.path.endswith("/count_tokens"):
            return web.json_response({"input_tokens": COUNTED_TOKENS})
        if body.get("stream"):
            return await self.stream(request, body, behaviour)
        answer = json.dumps(message(body, behaviour)).encode()
        self.answers.append(answer)
        return web.Response(body=answer, content_type="application/json")

    async def stream(self, request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "request-id": "req_fake"})
        await response.prepare(request)
        self.answers.append(b"")
        for name, data in stream_events(body, behaviour):
            event = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            self.answers[-1] += event
            await response.write(event)
        return response


def start_usage(behaviour: Behaviour) -> dict:
    usage = {
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": CACHE_READ_TOKENS,
        "output_tokens": 1,
    }
    if behaviour.cache_writes:
        usage["cache_creation_input_tokens"] = CACHE_WRITE_5M_TOKENS + CACHE_WRITE_1H_TOKENS
        split = {"ephemeral_5m_input_tokens": CACHE_WRITE_5M_TOKENS, "ephemeral_1h_input_tokens": CACHE_WRITE_1H_TOKENS}
        usage["cache_creation"] = split
    return usage


def message(body: dict, behaviour: Behaviour) -> dict:
    if behaviour.tool_call:
        content = [
            {"type": "text", "text": TOOL_TEXT},
            {"type": "tool_use", "id": TOOL_ID, "name": TOOL_NAME, "input": {"city": "Lisbon"}},
        ]
        stop_reason = "tool_use"
    else:
        content, stop_reason = [{"type": "text", "text": REPLY}], "end_turn"
    return {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {**start_usage(behaviour), "output_tokens": OUTPUT_TOKENS},
    }


def text_block_events(index: int, pieces: list[str], behaviour: Behaviour) -> list[tuple[str, dict]]:
    events = [("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})]
    events.append(("ping", {}))
    for number, piece in enumerate(pieces):
        if behaviour.error_after is not None and number == behaviour.error_after:
            events.append(("error", OVERLOADED))
            return events
        events.append(("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}}))
    events.append(("content_block_stop", {"index": index}))
    return events


def tool_block_events(index: int) -> list[tuple[str, dict]]:
    block = {"type": "tool_use", "id": TOOL_ID, "name": TOOL_NAME, "input": {}}
    events = [("content_block_start", {"index": index, "content_block": block})]
    for piece in TOOL_ARGUMENT_PIECES:
        delta = {"type": "input_json_delta", "partial_json": piece}
        events.append(("content_block_delta", {"index": index, "delta": delta}))
    events.append(("content_block_stop", {"index": index}))
    return events


def stream_events(body: dict, behaviour: Behaviour) -> list[tuple[str, dict]]:
    started = {**message(body, behaviour), "content": [], "stop_reason": None, "usage": start_usage(behaviour)}
    events = [("message_start", {"message": started})]
    if behaviour.tool_call:
        events += text_block_events(0, [TOOL_TEXT], behaviour) + tool_block_events(1)
        stop_reason = "tool_use"
    else:
        events += text_block_events(0, REPLY_PIECES, behaviour)
        stop_reason = "end_turn"
    if events[-1][0] != "error":
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        usage = {**start_usage(behaviour), "output_tokens": OUTPUT_TOKENS} if behaviour.cache_writes else {}
        events.append(("message_delta", {"delta": delta, "usage": {**usage, "output_tokens": OUTPUT_TOKENS}}))
        events.append(("message_stop", {}))
    return [(name, {"type": name, **data}) if name != "error" else (name, data) for name, data in events]
