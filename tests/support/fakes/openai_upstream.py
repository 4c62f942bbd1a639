"""A fake OpenAI upstream on 127.0.0.1 (random port) that speaks the real wire format.

By default it answers chat completions with `REPLY` and exact usage; tests queue other behaviours
(`fake.script.append(Behaviour(...))`) to fail, stall, or cut a stream short.
"""

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web

REPLY = "Hello from the fake upstream!"
PROMPT_TOKENS = 12
REPLY_PIECES = ["Hello", " from", " the", " fake", " upstream", "!"]
CACHED_TOKENS = 8  # of PROMPT_TOKENS, when a behaviour reports a cache hit
REASONING_TOKENS = 2  # of the completion tokens, alongside a cache hit


@dataclass
class Behaviour:
    status: int = 200
    body: dict | None = None  # a JSON body to answer with instead of the default
    usage: bool = True  # include usage (non-stream) / honour include_usage (stream)
    zero_usage: bool = False  # send an all-zero usage object
    cached: bool = False  # usage reports CACHED_TOKENS read from the prompt cache and REASONING_TOKENS
    deepseek: bool = False  # with `cached`: DeepSeek's usage fields (prompt_cache_hit/miss_tokens) instead
    die_after: int | None = None  # stream: drop the connection after this many content chunks
    stall_after: int | None = None  # stream: stop sending (but keep the connection) after N chunks
    delay: float = 0.0  # seconds before answering
    chunk_delay: float = 0.0  # seconds between stream chunks
    headers: dict = field(default_factory=dict)  # more response headers (a whole chat answer)
    tool_call: bool = False  # chat: answer with a call of TOOL_NAME (streamed as two argument fragments)


@dataclass
class Recorded:
    path: str
    headers: dict
    body: dict
    raw: bytes = b""
    query: str = ""


SPEECH_BYTES = bytes(range(256)) * 64  # stands in for an MP3
TRANSCRIPT = "The quick brown fox jumps over the lazy dog."
EMBEDDING = [0.0123, -0.0456, 0.0789]
TOOL_CALL_ID = "call_fake1"
TOOL_NAME = "lookup_weather"
TOOL_ARGUMENT_PIECES = ['{"city": "Lis', 'bon"}']


@dataclass
class FakeOpenAI:
    script: list[Behaviour] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0
    cancelled_streams: int = 0
    revoked: set[str] = field(default_factory=set)  # keys answered with 401 invalid_api_key, as OpenAI does

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if request.content_type == "application/json" else {}
        self.requests.append(Recorded(request.path, dict(request.headers), body, raw, request.query_string))
        if request.headers.get("Authorization", "").removeprefix("Bearer ") in self.revoked:
            return web.json_response(REVOKED, status=401)
        behaviour = self.script.pop(0) if self.script else Behaviour()
        await asyncio.sleep(behaviour.delay)
        if behaviour.status != 200 or behaviour.body is not None:
            return web.json_response(behaviour.body or {}, status=behaviour.status)
        operation = request.path.rsplit("/v1/", 1)[-1].split("/deployments/")[-1]
        if operation == "models":
            return web.json_response(model_list())
        if operation.endswith("audio/speech"):
            return web.Response(body=SPEECH_BYTES, content_type="audio/mpeg")
        if operation.endswith(("audio/transcriptions", "audio/translations")):
            return web.json_response({"text": TRANSCRIPT})
        if operation.endswith("embeddings"):
            return web.json_response(embedding(body, behaviour))
        if operation.endswith("moderations"):
            return web.json_response({"id": "modr-1", "model": body.get("model"), "results": [{"flagged": False}]})
        if operation.endswith("images/generations"):
            return web.json_response({"created": 1, "data": [{"url": "https://img.example/1.png"}] * body.get("n", 1)})
        if body.get("stream"):
            return await self.stream(request, body, behaviour)
        return web.json_response(completion(body, behaviour), headers=behaviour.headers)

    async def stream(self, request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunks = stream_chunks(body, behaviour)
        try:
            for number, chunk in enumerate(chunks):
                if behaviour.die_after is not None and number > behaviour.die_after:
                    request.transport.close()
                    return response
                if behaviour.stall_after is not None and number > behaviour.stall_after:
                    await asyncio.sleep(3600)
                await response.write(chunk)
                await asyncio.sleep(behaviour.chunk_delay)
            await response.write(b"data: [DONE]\n\n")
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled_streams += 1
            raise
        return response


REVOKED = {
    "error": {
        "message": "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}
MODEL_LIST = ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]


def model_list() -> dict:
    """GET /v1/models: what OpenAI lists."""
    data = [{"id": name, "object": "model", "created": 1715367049, "owned_by": "system"} for name in MODEL_LIST]
    return {"object": "list", "data": data}


def usage_object(behaviour: Behaviour) -> dict:
    if behaviour.zero_usage:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    completion = len(REPLY_PIECES)
    usage = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion,
        "total_tokens": PROMPT_TOKENS + completion,
    }
    if behaviour.cached and behaviour.deepseek:
        return {
            **usage,
            "prompt_cache_hit_tokens": CACHED_TOKENS,
            "prompt_cache_miss_tokens": PROMPT_TOKENS - CACHED_TOKENS,
        }
    if behaviour.cached:
        usage["prompt_tokens_details"] = {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0}
        usage["completion_tokens_details"] = {"reasoning_tokens": REASONING_TOKENS, "audio_tokens": 0}
    return usage


def embedding(body: dict, behaviour: Behaviour) -> dict:
    answer = {
        "object": "list",
        "model": body.get("model"),
        "data": [{"object": "embedding", "index": 0, "embedding": EMBEDDING}],
    }
    if behaviour.usage:
        answer["usage"] = {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS}
    return answer


def completion(body: dict, behaviour: Behaviour) -> dict:
    legacy = "prompt" in body
    choice = (
        {"index": 0, "text": REPLY, "finish_reason": "stop"}
        if legacy
        else {"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}
    )
    if behaviour.tool_call:
        call = {"id": TOOL_CALL_ID, "type": "function", "function": tool_function("".join(TOOL_ARGUMENT_PIECES))}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
    answer = {
        "id": "chatcmpl-fake",
        "object": "text_completion" if legacy else "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [choice],
    }
    if behaviour.usage:
        answer["usage"] = usage_object(behaviour)
    return answer


def stream_chunks(body: dict, behaviour: Behaviour) -> list[bytes]:
    legacy = "prompt" in body
    kind = "text_completion" if legacy else "chat.completion.chunk"
    base = {"id": "chatcmpl-fake", "object": kind, "created": 1717000000, "model": body["model"]}
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage")) and behaviour.usage
    if legacy:
        chunks = [{**base, "choices": [{"index": 0, "text": piece, "finish_reason": None}]} for piece in REPLY_PIECES]
        chunks.append({**base, "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
    else:
        deltas = [{"role": "assistant", "content": ""}] + [{"content": piece} for piece in REPLY_PIECES]
        if behaviour.tool_call:
            deltas = [{"role": "assistant", "content": None}] + tool_call_deltas()
        chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        reason = "tool_calls" if behaviour.tool_call else "stop"
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
    if wants_usage:
        for chunk in chunks:
            chunk["usage"] = None
        chunks.append({**base, "choices": [], "usage": usage_object(behaviour)})
    return [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks]


def tool_function(arguments: str) -> dict:
    return {"name": TOOL_NAME, "arguments": arguments}


def tool_call_deltas() -> list[dict]:
    first = {"index": 0, "id": TOOL_CALL_ID, "type": "function", "function": tool_function("")}
    fragments = [{"index": 0, "function": {"arguments": piece}} for piece in TOOL_ARGUMENT_PIECES]
    return [{"tool_calls": [call]} for call in [first, *fragments]]


FAKE_GRANT_USD = 25.0
FAKE_USED_CENTS = 735.2


async def billing(request: web.Request) -> web.Response:
    """What an OpenAI-compatible reseller reports for a key: a $25 grant of which $7.352 is used."""
    if request.match_info["kind"] == "subscription":
        return web.json_response({"object": "billing_subscription", "hard_limit_usd": FAKE_GRANT_USD})
    return web.json_response({"object": "list", "total_usage": FAKE_USED_CENTS})


def start(fake: FakeOpenAI) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """Serve `fake` from a thread with its own event loop; returns once the port is bound."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", fake.handle)
        app.router.add_route("GET", "/v1/dashboard/billing/{kind}", billing)
        app.router.add_route("GET", "/v1/models", fake.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        fake.port = site._server.sockets[0].getsockname()[1]
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop)
    ready.wait(10)
    return loop, thread
