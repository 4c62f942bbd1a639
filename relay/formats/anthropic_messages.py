"""Anthropic's Messages API as an inbound format (`POST /v1/messages`): Claude Code and every Anthropic SDK.

- Keys come in `x-api-key` (Anthropic's SDKs) or `Authorization: Bearer` (Claude Code's ANTHROPIC_AUTH_TOKEN).
- Anthropic channels and Claude on Vertex and Bedrock speak it natively: the client's request is passed through (see the
  adaptors' "messages" endpoint) and the answer's bytes relayed unchanged.
- Every other channel gets the request converted to OpenAI chat (relay.formats.anthropic_convert.to_chat); its
  answer comes back as a message (`from_chat`) or as Anthropic's event stream (`MessagesStream`).
- Errors are `{"type": "error", "error": {"type", "message"}}` with the status Anthropic's SDKs map to their
  exception classes; a stream that breaks off after it started ends with an `error` event.
"""

from collections.abc import Sequence

import orjson
from django.http import HttpRequest, HttpResponse

from billing.pricing import Quote
from relay import media
from relay.adaptors.base import ANTHROPIC_MESSAGES, RelayRequest, UpstreamFailure, Usage
from relay.endpoints import Endpoint, counts_images, load_body, positive_int, require_model, stream_flags
from relay.errors import RelayError
from relay.formats import anthropic_convert
from relay.formats.base import ConvertedStream, InboundFormat, PassedThrough, StreamWriter, text_field
from relay.tokenizer import Measure

# The client's headers a pass-through forwards, by their WSGI names (request.META: no header mapping built).
FORWARDED_HEADERS = {"anthropic-version": "HTTP_ANTHROPIC_VERSION", "anthropic-beta": "HTTP_ANTHROPIC_BETA"}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}
OVERLOADED = "overloaded_error"
OVERLOADED_STATUS = 529  # Anthropic's own; only when the upstream said it was overloaded


def error_kind(error: RelayError) -> tuple[int, str]:
    """(status, Anthropic error type) of a gateway or upstream error."""
    if error.type == OVERLOADED:
        return OVERLOADED_STATUS, OVERLOADED
    if error.status in ERROR_TYPES:
        return error.status, ERROR_TYPES[error.status]
    return error.status, "api_error" if error.status >= 500 else "invalid_request_error"


def error_body(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_response(error: RelayError) -> HttpResponse:
    status, kind = error_kind(error)
    return HttpResponse(orjson.dumps(error_body(kind, error.message)), status=status, content_type="application/json")


def error_event(failure: UpstreamFailure) -> bytes:
    kind = OVERLOADED if failure.type == OVERLOADED else "api_error"
    return b"event: error\ndata: " + orjson.dumps(error_body(kind, failure.message)) + b"\n\n"


def message_id(answer_id: str) -> str:
    return f"msg_{answer_id}"


def forwarded_headers(request: HttpRequest) -> dict[str, str]:
    meta = request.META
    return {name: meta[wsgi_name] for name, wsgi_name in FORWARDED_HEADERS.items() if wsgi_name in meta}


def image_url(block: dict) -> str:
    source = block.get("source")
    if not isinstance(source, dict):
        return ""
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    url = source.get("url")
    return url if isinstance(url, str) else ""


def image_blocks(blocks: object) -> list[dict]:
    """The image blocks of a message's content, tool results' content included."""
    found = []
    for block in blocks if isinstance(blocks, list) else ():
        if isinstance(block, dict) and block.get("type") == "image":
            found.append(block)
        elif isinstance(block, dict) and block.get("type") == "tool_result":
            found += image_blocks(block.get("content"))
    return found


class Messages(Endpoint):
    """A Messages request, as the client sent it: counted, reserved and priced like chat."""

    name = ANTHROPIC_MESSAGES

    def parse(self, raw: bytes, request: HttpRequest) -> RelayRequest:
        body = load_body(raw)
        model = require_model(body)
        stream, _ = stream_flags(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise RelayError(400, "messages: must be a non-empty array of objects", param="messages")
        self.most_completion_tokens(body)
        headers = forwarded_headers(request)
        return RelayRequest(self.name, model, body, raw, stream, False, request.path, passthrough=True, headers=headers)

    def most_completion_tokens(self, body: dict) -> int:
        budget = positive_int(body, "max_tokens")
        if budget is None:
            raise RelayError(400, "max_tokens: Field required", param="max_tokens")
        return budget

    def prompt_tokens(self, request: RelayRequest, measure: Measure) -> int:
        return anthropic_convert.prompt_tokens(request.body, measure)

    def images(self, request: RelayRequest) -> list[media.ImagePart]:
        if not counts_images(request):
            return []
        parts = [
            {"type": "image_url", "image_url": {"url": image_url(block)}}
            for message in request.body["messages"]
            for block in image_blocks(message.get("content"))
        ]
        return media.images_in([{"content": parts}])

    def reservation(self, quote: Quote, request: RelayRequest, prompt_tokens: int) -> int:
        return quote.hold(prompt_tokens, self.most_completion_tokens(request.body))


class AnthropicEvents(ConvertedStream):
    """The hub's chunks as Anthropic's event stream."""

    def broken(self, failure: UpstreamFailure) -> bytes:
        return error_event(failure)  # Anthropic's grammar: an error event ends the stream


class AnthropicMessages(InboundFormat):
    name = "anthropic"
    endpoint = Messages()

    def credential(self, request: HttpRequest) -> str:
        return request.META.get("HTTP_X_API_KEY") or super().credential(request)

    def native_for(self, channel_type: str, upstream_model: str) -> bool:
        if channel_type == "bedrock":
            return "anthropic." in upstream_model  # Claude on Bedrock (relay.adaptors.bedrock.is_claude)
        return channel_type == "anthropic" or (channel_type == "vertex" and upstream_model.startswith("claude"))

    def session_identity(self, request: RelayRequest, http_request: HttpRequest, sources: Sequence[str]) -> str | None:
        """The X-Session-Id header, else `metadata.user_id`, which Claude Code fills with the account and the
        session."""
        named = super().session_identity(request, http_request, sources)
        metadata = request.body.get("metadata")
        if named or "metadata.user_id" not in sources or not isinstance(metadata, dict):
            return named
        return text_field(metadata, "user_id")

    def to_hub(self, request: RelayRequest) -> RelayRequest:
        chat = anthropic_convert.to_chat(request.body)
        return RelayRequest("chat", request.model, chat, orjson.dumps(chat), request.stream, request.stream)

    def whole(self, request: RelayRequest, body: bytes, answer_id: str, usage: Usage) -> bytes:
        message = anthropic_convert.from_chat(orjson.loads(body), request.model, message_id(answer_id))
        message["usage"] = anthropic_convert.usage_object(usage)  # what was billed, counted here if need be
        return orjson.dumps(message)

    def stream_writer(self, request: RelayRequest, answer_id: str, input_tokens: int) -> StreamWriter:
        return AnthropicEvents(anthropic_convert.MessagesStream(request.model, message_id(answer_id), input_tokens))

    def native_writer(self) -> StreamWriter:
        return PassedThrough(error_event)

    def error_response(self, error: RelayError) -> HttpResponse:
        return error_response(error)

    def log_note(self, native: bool) -> str:
        return "anthropic messages, passed through: " if native else "anthropic messages, converted to chat: "


MESSAGES = AnthropicMessages()
