"""OpenAI's Responses API passed through (the `openai` and `azure` adaptors): the client's body, the upstream's
answer and its event stream, read on the side for what billing needs.

The body goes as the client sent it, re-serialised only to put the channel's model name in. The whole answer
and each stream event are relayed as they came; usage comes from the answer's `usage` and from the stream's
`response.completed` / `response.incomplete` / `response.failed` event (the same `input_tokens` /
`output_tokens` and `*_details` as the whole answer), text for a local count from the output and the deltas.
The response's id (the whole answer's, the stream's `response.created`) is `StreamState.chunk_id`.
"""

import orjson

from relay.adaptors.base import (
    ErrorEventRelayed,
    RelayRequest,
    StreamConverter,
    UpstreamFailed,
    UpstreamFailure,
    Usage,
    load_json,
    openai_style_error,
)
from relay.adaptors.openai_format import openai_usage, request_json, stream_event

SLUG = "openai responses"
ENDINGS = ("response.completed", "response.incomplete", "response.failed")
# The deltas of what the model wrote: the answer's text, a function call's arguments, a reasoning summary.
DELTAS = (
    "response.output_text.delta",
    "response.function_call_arguments.delta",
    "response.reasoning_summary_text.delta",
    "response.refusal.delta",
)


def native_body(request: RelayRequest, model: str) -> bytes:
    """The client's own body: its bytes unless the channel names the model otherwise."""
    return request.raw if model == request.model else request_json({**request.body, "model": model})


def output_text(response: dict) -> str:
    """What a response's output holds that the model wrote (text, refusals, call names and arguments,
    reasoning summaries), for a local count should its usage be missing."""
    pieces = []
    for item in response.get("output") or ():
        if not isinstance(item, dict):
            continue
        pieces += [item.get("name") or "", item.get("arguments") or ""]
        for part in (item.get("content") or []) + (item.get("summary") or []):
            if isinstance(part, dict):
                pieces.append(part.get("text") or part.get("refusal") or "")
    return "".join(piece for piece in pieces if isinstance(piece, str))


def native_answer(content: bytes) -> tuple[bytes, Usage | None, str]:
    """A passed-through whole answer: its bytes, and what billing needs from them."""
    response = load_json(content)
    return content, openai_usage(response.get("usage")), output_text(response)


class NativeStream(StreamConverter):
    """A passed-through stream's events read for billing only (the relay writes the upstream's bytes)."""

    def __init__(self, request: RelayRequest) -> None:
        super().__init__(request)
        self.ended = False

    def feed(self, payload: bytes) -> list[bytes]:
        event = stream_event(payload, SLUG) or {}
        kind = event.get("type")
        if kind in DELTAS:
            delta = event.get("delta")
            self.state.text_parts.append(delta if isinstance(delta, str) else "")
        elif kind == "response.output_item.added" and (event.get("item") or {}).get("type") == "function_call":
            self.state.max_tool_calls += 1
        elif kind == "response.created":
            self.state.chunk_id = str((event.get("response") or {}).get("id") or "")
        elif kind in ENDINGS:
            self.ended = True
            self.state.usage = openai_usage((event.get("response") or {}).get("usage"))
        elif kind == "error":
            raise ErrorEventRelayed(openai_style_error(502, orjson.dumps({"error": event})))
        return [payload]

    def finish(self) -> list[bytes]:
        if not self.ended:
            failure = UpstreamFailure(502, "the responses stream ended before its last event", "upstream_error")
            raise UpstreamFailed(failure)
        return []
