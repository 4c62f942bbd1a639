"""What every fake provider upstream shares: scripted behaviours, recorded requests, streamed lines.

A provider's fake subclasses RecordingFake with `answer` (its wire format) and its key and error shape
for bad keys (or its own `refuse`); `served` makes the pytest fixtures that start and reset it.
"""

import json
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from aiohttp import web

from tests.support.fakes.openai_upstream import start


@dataclass
class Behaviour:
    status: int = 200
    body: dict | None = None  # answer with this JSON body (and status) instead of the normal answer
    cut_after: int | None = None  # stream: close after this many pieces, without the provider's end event
    error_after: int | None = None  # stream: send the provider's error event after this many pieces
    tool_call: bool = False
    finish_reason: str | None = None  # the provider's own finish reason, instead of its normal one
    usage: bool = True  # report token counts
    cached: bool = False  # report cached (and, where the format has them, cache-written) input tokens


@dataclass
class Recorded:
    path: str
    headers: dict
    body: dict


@dataclass
class RecordingFake:
    api_key: ClassVar[str] = ""  # when set, requests must carry `Authorization: Bearer <api_key>`
    auth_error: ClassVar[dict] = {}  # the provider's answer (401) to any other key

    script: list[Behaviour] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(Recorded(request.path, dict(request.headers), body))
        behaviour = self.script.pop(0) if self.script else Behaviour()
        refusal = self.refuse(request)
        if refusal is not None:
            return refusal
        if behaviour.status != 200 or behaviour.body is not None:
            return web.json_response(behaviour.body or {}, status=behaviour.status)
        return await self.answer(request, body, behaviour)

    def refuse(self, request: web.Request) -> web.Response | None:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(self.auth_error, status=401)
        return None

    async def answer(self, request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
        raise NotImplementedError


def pieces_until(pieces: list, behaviour: Behaviour) -> tuple[list, bool]:
    """(the pieces to send, whether the stream ends normally) under a cut or error behaviour."""
    stop = min(n for n in (behaviour.cut_after, behaviour.error_after, len(pieces)) if n is not None)
    return pieces[:stop], stop == len(pieces)


async def stream_lines(request: web.Request, content_type: str, lines: list[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": content_type})
    await response.prepare(request)
    for line in lines:
        await response.write(line)
    return response


def ndjson(events: list[dict]) -> list[bytes]:
    return [json.dumps(event).encode() + b"\n" for event in events]


def sse(events: list[dict]) -> list[bytes]:
    return [f"data: {json.dumps(event)}\n\n".encode() for event in events]


def rerank_results(body: dict, with_documents: bool) -> list[dict]:
    """Cohere's and Jina's shared result shape, best first: a document scores by the words it shares with
    the query (plus a little for coming earlier, so there are no ties), cut to `top_n`."""
    query = set(body["query"].lower().split())
    results = []
    for index, document in enumerate(body["documents"]):
        text = document if isinstance(document, str) else document.get("text", "")
        score = len(query & set(text.lower().rstrip(".").split())) / max(len(query), 1) + 0.01 / (index + 1)
        result: dict = {"index": index, "relevance_score": round(score, 4)}
        if with_documents:
            result["document"] = {"text": text}
        results.append(result)
    results.sort(key=lambda result: -result["relevance_score"])
    return results[: body.get("top_n") or None]


def served(fake_class: type, name: str) -> tuple:
    """Fixtures `<name>_server` (one server per session) and `<name>` (that server, reset for the test).

    Any fake with `handle`, `port` and `reset()` works, RecordingFake or not.

    Use as `fake_x_server, fake_x = served(FakeX, "fake_x")` in a test module.
    """

    @pytest.fixture(scope="session", name=f"{name}_server")
    def server() -> RecordingFake:
        fake = fake_class()
        start(fake)
        return fake

    @pytest.fixture(name=name)
    def fresh(request: pytest.FixtureRequest) -> RecordingFake:
        fake = request.getfixturevalue(f"{name}_server")
        fake.reset()
        return fake

    return server, fresh
