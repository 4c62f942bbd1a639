"""A fake OpenAI Responses API on 127.0.0.1 (random port), at OpenAI's paths and Azure's (v1 and dated).

It creates responses (whole or streamed in the real event grammar, with usage that reports a cache hit and
reasoning), stores them, and answers retrieve, delete, cancel and input_items on them; it records every request
and the bytes of every answer it sent.
"""

import itertools
import json
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.fakes.server import serve

REPLY_PIECES = ["Hello", " from", " the", " Responses", " fake", "!"]
REPLY = "".join(REPLY_PIECES)
INPUT_TOKENS, CACHED_TOKENS, OUTPUT_TOKENS, REASONING_TOKENS = 30, 20, 9, 3
TOOL_NAME, CALL_ID, ARGUMENTS = "lookup_weather", "call_fake_responses", '{"city":"Lisbon"}'
PREFIX = ("/v1/responses", "/openai/v1/responses", "/openai/responses")


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict
    raw: bytes

    @property
    def body(self) -> dict:
        return json.loads(self.raw)


@dataclass
class FakeResponses:
    name: str = "fake"  # in the ids it mints, so that two fakes never mint the same id
    requests: list[Request] = field(default_factory=list)
    answers: list[bytes] = field(default_factory=list)
    stored: dict[str, dict] = field(default_factory=dict)
    inputs: dict[str, list] = field(default_factory=dict)
    cut_after: int | None = None  # the next stream drops its connection after this many events
    port: int = 0
    numbers: itertools.count = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeResponses":
        self.port = serve(lambda app: app.router.add_route("*", "/{tail:.*}", self.handle))
        return self

    def reset(self) -> None:
        self.cut_after = None
        self.requests.clear()
        self.answers.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(Request(request.method, request.path, request.query_string, dict(request.headers), raw))
        path = request.path
        for prefix in PREFIX:
            if path == prefix and request.method == "POST":
                return await self.create(request, json.loads(raw))
            if path.startswith(prefix + "/"):
                return self.on_stored(request.method, *path.removeprefix(prefix + "/").partition("/")[::2])
        return error(404, f"Invalid URL ({request.method} {path})")

    async def create(self, request: web.Request, body: dict) -> web.StreamResponse:
        previous = body.get("previous_response_id")
        if previous and previous not in self.stored:
            return error(400, f"Previous response with id '{previous}' not found.", "previous_response_not_found")
        number = next(self.numbers)
        response = response_object(f"resp_{self.name}_{number}", body, function_call=bool(body.get("tools")))
        self.stored[response["id"]] = response
        self.inputs[response["id"]] = input_items(body.get("input"))
        if not body.get("stream"):
            content = json.dumps(response).encode()
            self.answers.append(content)
            return web.Response(body=content, content_type="application/json")
        events = stream_events(response)[: self.cut_after]
        self.answers.append(b"".join(events))
        answer = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await answer.prepare(request)
        for event in events:
            await answer.write(event)
        if self.cut_after is not None:
            self.cut_after = None
            request.transport.close()
        return answer

    def on_stored(self, method: str, response_id: str, action: str) -> web.Response:
        response = self.stored.get(response_id)
        if response is None:
            return error(404, f"Response with id '{response_id}' not found.")
        if method == "GET" and not action:
            return web.json_response(response)
        if method == "DELETE" and not action:
            del self.stored[response_id]
            return web.json_response({"id": response_id, "object": "response", "deleted": True})
        if method == "POST" and action == "cancel":
            return web.json_response({**response, "status": "cancelled"})
        if method == "GET" and action == "input_items":
            items = self.inputs[response_id]
            listing = {"object": "list", "data": items, "has_more": False}
            return web.json_response({**listing, "first_id": items[0]["id"], "last_id": items[-1]["id"]})
        return error(404, f"Invalid URL ({method} .../{response_id}/{action})")


def error(status: int, message: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return web.json_response(body, status=status)


def input_items(given: object) -> list[dict]:
    items = [{"role": "user", "content": given}] if isinstance(given, str) else list(given or [])
    return [{"id": f"msg_in_{number}", "type": "message", **item} for number, item in enumerate(items)]


def usage() -> dict:
    return {
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "output_tokens": OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    }


def message_item(text: str, status: str = "completed") -> dict:
    content = [{"type": "output_text", "text": text, "annotations": []}] if text else []
    return {"type": "message", "id": "msg_fake", "status": status, "role": "assistant", "content": content}


def call_item(arguments: str, status: str = "completed") -> dict:
    item = {"type": "function_call", "id": "fc_fake", "call_id": CALL_ID, "name": TOOL_NAME}
    return {**item, "arguments": arguments, "status": status}


def response_object(response_id: str, body: dict, function_call: bool) -> dict:
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1750000000,
        "status": "completed",
        "model": body.get("model"),
        "output": [call_item(ARGUMENTS) if function_call else message_item(REPLY)],
        "usage": usage(),
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "previous_response_id": body.get("previous_response_id"),
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": body.get("tools") or [],
        "metadata": body.get("metadata") or {},
        "store": True,
    }


def stream_events(response: dict) -> list[bytes]:
    """The response as OpenAI streams it, event by event."""
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[dict] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
    ]
    item = response["output"][0]
    if item["type"] == "function_call":
        events += [
            {"type": "response.output_item.added", "output_index": 0, "item": call_item("", "in_progress")},
            {
                "type": "response.function_call_arguments.delta",
                "item_id": "fc_fake",
                "output_index": 0,
                "delta": ARGUMENTS,
            },
            {
                "type": "response.function_call_arguments.done",
                "item_id": "fc_fake",
                "output_index": 0,
                "arguments": ARGUMENTS,
            },
        ]
    else:
        where = {"item_id": "msg_fake", "output_index": 0, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": []}
        events += [
            {"type": "response.output_item.added", "output_index": 0, "item": message_item("", "in_progress")},
            {"type": "response.content_part.added", **where, "part": part},
            *({"type": "response.output_text.delta", **where, "delta": text, "logprobs": []} for text in REPLY_PIECES),
            {"type": "response.output_text.done", **where, "text": REPLY, "logprobs": []},
            {"type": "response.content_part.done", **where, "part": {**part, "text": REPLY}},
        ]
    events += [
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": response},
    ]
    return [
        f"event: {event['type']}\ndata: {json.dumps({**event, 'sequence_number': number})}\n\n".encode()
        for number, event in enumerate(events)
    ]
