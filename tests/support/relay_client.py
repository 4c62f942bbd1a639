"""Calling the relay in process as a client would, reading its SSE answers and the log row it wrote."""

import orjson
from django.http import HttpResponse
from django.test import AsyncClient

from billing.models import Log
from relay import sse
from relay.adaptors.base import RelayRequest
from tests.support.factories import wait_for

HELLO = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def post_chat(key: str, body: dict | bytes = HELLO, path: str = "/v1/chat/completions", **headers):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return AsyncClient().post(
        path, data, content_type="application/json", headers={"Authorization": f"Bearer {key}", **headers}
    )


async def sse_payloads(response: HttpResponse) -> list[bytes]:
    """Every `data:` payload of a streamed answer, `[DONE]` included, after checking the framing."""
    raw = b"".join([chunk async for chunk in response.streaming_content]) if response.streaming else response.content
    assert raw.endswith(b"\n\n"), raw[-200:]
    events = raw[:-2].split(b"\n\n")
    assert all(event.startswith(b"data: ") for event in events), raw
    return [event[len(b"data: ") :] for event in events]


def chunks_of(payloads: list[bytes]) -> list[dict]:
    return [orjson.loads(payload) for payload in payloads if payload != sse.DONE]


def assembled_text(chunks: list[dict]) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for chunk in chunks
        for choice in chunk.get("choices") or ()
        if "delta" in choice
    )


def assembled_tool_calls(chunks: list[dict]) -> dict[int, dict]:
    """index -> {id, name, arguments}, concatenating argument fragments the way OpenAI clients do."""
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            for fragment in choice.get("delta", {}).get("tool_calls") or ():
                call = calls.setdefault(fragment["index"], {"id": None, "name": "", "arguments": ""})
                call["id"] = fragment.get("id") or call["id"]
                function = fragment.get("function") or {}
                call["name"] += function.get("name") or ""
                call["arguments"] += function.get("arguments") or ""
    return calls


def finish_reasons(chunks: list[dict]) -> list[str]:
    return [
        choice["finish_reason"]
        for chunk in chunks
        for choice in chunk.get("choices") or ()
        if choice.get("finish_reason")
    ]


def chat_request(body: dict) -> RelayRequest:
    """The RelayRequest the relay hands an adaptor for this chat body."""
    stream = bool(body.get("stream"))
    wants_usage = stream and bool((body.get("stream_options") or {}).get("include_usage"))
    return RelayRequest("chat", body["model"], body, orjson.dumps(body), stream, wants_usage)


async def consume_log(request_id: str) -> Log:
    """The request's consume row; streams settle in a task of their own, so it may land after the answer."""
    await wait_for(lambda: Log.objects.filter(request_id=request_id, type=Log.Type.CONSUME).exists())
    return await Log.objects.aget(request_id=request_id, type=Log.Type.CONSUME)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
