"""A fake Gemini API on 127.0.0.1 (random port) that speaks the real wire format.

It serves `POST /{version}/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`, `:countTokens`,
`:embedContent` and `:batchEmbedContents`, checks
the `key` query parameter like Google does (400 INVALID_ARGUMENT "API key not valid", reason
API_KEY_INVALID), and answers with `REPLY` or a function call. Streams carry only the new text in each
event, cumulative usageMetadata on every event, and finishReason on the last; they end by closing the
connection (no sentinel).
"""

import json
from dataclasses import dataclass, field

from aiohttp import web

API_KEY = "AIza-upstream-secret"
REPLY_PIECES = ["Lis", "bon", " is sunny."]
REPLY = "".join(REPLY_PIECES)
PROMPT_TOKENS = 270
CANDIDATE_TOKENS = 5
THOUGHT_TOKENS = 3
COMPLETION_TOKENS = CANDIDATE_TOKENS + THOUGHT_TOKENS  # thinking is billed as output
CACHED_TOKENS = 200  # of PROMPT_TOKENS, when a behaviour reports a context cache hit
FUNCTION_NAME = "lookup_weather"
COUNTED_TOKENS = 31  # what countTokens answers
EMBEDDING = [0.25, -0.5, 0.125]
BAD_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
OVERLOADED_MESSAGE = "The model is overloaded. Please try again later."
UNAVAILABLE = {"error": {"code": 503, "message": OVERLOADED_MESSAGE, "status": "UNAVAILABLE"}}
BAD_KEY = {
    "error": {
        "code": 400,
        "message": BAD_KEY_MESSAGE,
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    }
}


@dataclass
class Behaviour:
    status: int = 200
    body: dict | None = None  # a JSON body to answer with instead of a response
    function_call: bool = False  # answer with a functionCall part
    finish_reason: str = "STOP"
    error_after: int | None = None  # stream: send an error event after this many text events
    cached: bool = False  # usageMetadata reports CACHED_TOKENS of the prompt served from the context cache


@dataclass
class Recorded:
    path: str
    query: dict
    headers: dict
    body: dict
    raw: bytes = b""


@dataclass
class FakeGemini:
    script: list[Behaviour] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    answers: list[bytes] = field(default_factory=list)  # the bodies of whole answers, as sent
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
        self.requests.append(Recorded(request.path, dict(request.query), dict(request.headers), body, raw))
        behaviour = self.script.pop(0) if self.script else Behaviour()
        if request.query.get("key") != API_KEY:
            return web.json_response(BAD_KEY, status=400)
        if behaviour.status != 200 or behaviour.body is not None:
            return web.json_response(behaviour.body or {}, status=behaviour.status)
        if request.path.endswith(":streamGenerateContent") and request.query.get("alt") == "sse":
            return await self.stream(request, behaviour)
        answer = json.dumps(method_answer(request.path.rsplit(":", 1)[-1], body, behaviour)).encode()
        self.answers.append(answer)
        return web.Response(body=answer, content_type="application/json")

    async def stream(self, request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in stream_events(behaviour):
            await response.write(f"data: {json.dumps(event)}\r\n\r\n".encode())
        return response


def method_answer(method: str, body: dict, behaviour: Behaviour) -> dict:
    if method == "countTokens":
        return {"totalTokens": COUNTED_TOKENS}
    if method == "embedContent":
        return {"embedding": {"values": EMBEDDING}}
    if method == "batchEmbedContents":
        return {"embeddings": [{"values": EMBEDDING} for _ in body["requests"]]}
    return whole_response(behaviour)


def usage(candidates: int, thoughts: int, behaviour: Behaviour) -> dict:
    metadata = {"promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS + candidates + thoughts}
    if behaviour.cached:
        metadata["cachedContentTokenCount"] = CACHED_TOKENS
    if candidates:
        metadata["candidatesTokenCount"] = candidates
    if thoughts:
        metadata["thoughtsTokenCount"] = thoughts
    return metadata


def candidate(parts: list[dict], finish_reason: str | None = None) -> dict:
    found = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish_reason:
        found["finishReason"] = finish_reason
    return found


def answer_parts(behaviour: Behaviour) -> list[dict]:
    if behaviour.function_call:
        return [{"functionCall": {"name": FUNCTION_NAME, "args": {"city": "Lisbon"}}}]
    return [{"text": REPLY}]


def whole_response(behaviour: Behaviour) -> dict:
    return {
        "candidates": [candidate(answer_parts(behaviour), behaviour.finish_reason)],
        "usageMetadata": usage(CANDIDATE_TOKENS, THOUGHT_TOKENS, behaviour),
        "modelVersion": "gemini-2.0-flash",
        "responseId": "resp-fake",
    }


def stream_events(behaviour: Behaviour) -> list[dict]:
    pieces = [answer_parts(behaviour)] if behaviour.function_call else [[{"text": piece}] for piece in REPLY_PIECES]
    events = []
    for number, parts in enumerate(pieces):
        if behaviour.error_after is not None and number == behaviour.error_after:
            events.append(UNAVAILABLE)
            return events
        last = number == len(pieces) - 1
        tokens = CANDIDATE_TOKENS * (number + 1) // len(pieces)
        events.append(
            {
                "candidates": [candidate(parts, behaviour.finish_reason if last else None)],
                "usageMetadata": usage(tokens, THOUGHT_TOKENS if last else 0, behaviour),
                "modelVersion": "gemini-2.0-flash",
                "responseId": "resp-fake",
            }
        )
    return events
