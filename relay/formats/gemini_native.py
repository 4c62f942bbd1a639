"""Gemini's native API as an inbound format (`POST /v1beta/models/{model}:{method}`, and the same under `/v1/`):
the Gemini CLI and the google-genai SDK.

- Keys come in `x-goog-api-key` (the SDKs), the `key` query parameter, or `Authorization: Bearer`.
- `gemini` channels and Gemini models on `vertex` speak it natively: the client's request is passed through (see
  the adaptors' Gemini method endpoints) and the answer relayed as it came; embeddings pass through to `gemini`
  channels only (Vertex embeds with another API).
- Every other channel gets generateContent converted to OpenAI chat and embedContent / batchEmbedContents to
  OpenAI embeddings (relay.formats.gemini_convert); the answer comes back in Gemini's shapes.
- A stream is `data:` lines with `?alt=sse`, else one JSON array written element by element (Gemini's default
  form). The upstream is always asked for SSE: an array-form client gets the upstream's objects unchanged,
  framed as the array.
- Errors are Google's `{"error": {"code", "message", "status"}}` with the HTTP status the SDKs raise
  ClientError (4xx) and ServerError (5xx) for; a stream that breaks off ends with such an error object.
"""

import orjson
from django.http import HttpRequest, HttpResponse

from billing.pricing import Quote
from relay import media
from relay.adaptors.base import (
    GEMINI_BATCH_EMBED,
    GEMINI_EMBED,
    GEMINI_GENERATE,
    GEMINI_STREAM,
    RelayRequest,
    StreamState,
    UpstreamFailure,
    Usage,
)
from relay.endpoints import EMBEDDINGS, Endpoint, counts_images, load_body, require_model
from relay.errors import RelayError
from relay.formats import gemini_convert
from relay.formats.base import InboundFormat, StreamWriter
from relay.formats.gemini_convert import object_or_empty
from relay.tokenizer import Measure

STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(status: int, message: str) -> dict:
    fallback = "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"
    return {"error": {"code": status, "message": message, "status": STATUSES.get(status, fallback)}}


def error_response(error: RelayError) -> HttpResponse:
    body = orjson.dumps(error_body(error.status, error.message))
    return HttpResponse(body, status=error.status, content_type="application/json")


def failure_object(failure: UpstreamFailure) -> bytes:
    return orjson.dumps(error_body(failure.status, failure.message))


def credential(request: HttpRequest) -> str:
    """`x-goog-api-key`, else `?key=`, else `Authorization` (as billing.accounts.key_auth reads it)."""
    return request.META.get("HTTP_X_GOOG_API_KEY") or request.GET.get("key") or request.headers.get("Authorization", "")


def speaks_gemini(request: HttpRequest) -> bool:
    """Gemini's SDKs and CLI send their key in `x-goog-api-key` or `?key=`; OpenAI's and Anthropic's never do."""
    return "HTTP_X_GOOG_API_KEY" in request.META or "key" in request.GET


def path_model(request: HttpRequest) -> str:
    model = request.resolver_match.kwargs.get("model") if request.resolver_match else None
    return require_model({"model": model})


def image_parts(body: dict) -> list[dict]:
    """The prompt's inline images as OpenAI image parts (relay.media sizes those)."""
    found = []
    contents = body.get("contents")
    for content in contents if isinstance(contents, list) else ():
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            inline = object_or_empty(gemini_convert.field(part, "inlineData") if isinstance(part, dict) else None)
            mime, data = gemini_convert.field(inline, "mimeType"), inline.get("data")
            if isinstance(mime, str) and mime.startswith("image/") and isinstance(data, str):
                found.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}})
    return found


class GenerateContent(Endpoint):
    """generateContent and streamGenerateContent, as the client sent them: counted, reserved and priced like
    chat."""

    name = GEMINI_GENERATE

    def parse(self, raw: bytes, request: HttpRequest) -> RelayRequest:
        body = load_body(raw)
        model = path_model(request)
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents or not all(isinstance(c, dict) for c in contents):
            raise RelayError(400, "contents: must be a non-empty list of Content objects", param="contents")
        self.most_completion_tokens(body)
        stream = request.path.endswith(GEMINI_STREAM)
        method = GEMINI_STREAM if stream else GEMINI_GENERATE
        return RelayRequest(method, model, body, raw, stream, False, request.path, passthrough=True)

    def most_completion_tokens(self, body: dict) -> int:
        config = gemini_convert.field(body, "generationConfig")
        chat_fields = gemini_convert.generation_fields(config) if isinstance(config, dict) else {}
        return super().most_completion_tokens(chat_fields)

    def prompt_tokens(self, request: RelayRequest, measure: Measure) -> int:
        return gemini_convert.prompt_tokens(request.body, measure)

    def images(self, request: RelayRequest) -> list[media.ImagePart]:
        if not counts_images(request):
            return []
        return media.images_in([{"content": image_parts(request.body)}])


class EmbedContent(Endpoint):
    """embedContent / batchEmbedContents: billed like embeddings, on the texts' tokens."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.batch = name == GEMINI_BATCH_EMBED

    def parse(self, raw: bytes, request: HttpRequest) -> RelayRequest:
        body = load_body(raw)
        model = path_model(request)
        gemini_convert.embedding_texts(body, self.batch)  # refuses a malformed request before anything is held
        return RelayRequest(self.name, model, body, raw, False, False, request.path, passthrough=True)

    def prompt_tokens(self, request: RelayRequest, measure: Measure) -> int:
        return gemini_convert.embedding_tokens(request.body, self.batch, measure)

    def reservation(self, quote: Quote, request: RelayRequest, prompt_tokens: int) -> int:
        return EMBEDDINGS.reservation(quote, request, prompt_tokens)

    def local_usage(self, request: RelayRequest, prompt_tokens: int, text: str) -> Usage:
        return EMBEDDINGS.local_usage(request, prompt_tokens, text)


class ConvertedStream(StreamWriter):
    """The hub's chunks as Gemini's stream, framed by `framing`."""

    def __init__(self, stream: gemini_convert.GenerateStream, framing: "Framing") -> None:
        self.stream = stream
        self.framing = framing

    def frames(self, payloads: list[bytes]) -> bytes:
        chunks = [chunk for payload in payloads for chunk in self.stream.feed(orjson.loads(payload))]
        return self.framing.elements([orjson.dumps(chunk) for chunk in chunks])

    def wants_usage(self, state: StreamState) -> bool:
        return True

    def closing(self, state: StreamState, usage: Usage | None, failure: UpstreamFailure | None) -> bytes:
        if failure is not None:
            return self.framing.elements([failure_object(failure)]) + self.framing.end()
        last = self.stream.finish(usage or Usage())
        return self.framing.elements([orjson.dumps(chunk) for chunk in last]) + self.framing.end()


class PassedThrough(StreamWriter):
    """A Gemini SSE stream relayed as it came; only a break the upstream did not report itself adds an error."""

    relays_bytes = True

    def closing(self, state: StreamState, usage: Usage | None, failure: UpstreamFailure | None) -> bytes:
        return sse_error(failure) if failure is not None else b""


class PassedThroughArray(StreamWriter):
    """A passed-through stream for an array-form client: the upstream's objects as they came, in the array."""

    def __init__(self) -> None:
        self.framing = JsonArray()

    def frames(self, payloads: list[bytes]) -> bytes:
        return self.framing.elements(payloads)

    def closing(self, state: StreamState, usage: Usage | None, failure: UpstreamFailure | None) -> bytes:
        tail = self.framing.elements([failure_object(failure)]) if failure is not None else b""
        return tail + self.framing.end()


def sse_error(failure: UpstreamFailure) -> bytes:
    return ServerSentEvents().elements([failure_object(failure)])


class Framing:
    """How the stream's GenerateContentResponse objects are written."""

    def elements(self, objects: list[bytes]) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        return b""


class ServerSentEvents(Framing):
    def elements(self, objects: list[bytes]) -> bytes:
        return b"".join(b"data: " + item + b"\r\n\r\n" for item in objects)


class JsonArray(Framing):
    """`[{...}\\n,{...}\\n]`, as Gemini writes its stream without alt=sse."""

    def __init__(self) -> None:
        self.opened = False

    def elements(self, objects: list[bytes]) -> bytes:
        written = []
        for item in objects:
            written.append((b",\r\n" if self.opened else b"[") + item)
            self.opened = True
        return b"".join(written)

    def end(self) -> bytes:
        return b"]" if self.opened else b"[]"


class GeminiFormat(InboundFormat):
    """What the Gemini methods share: the key, the errors, the log's note."""

    name = "gemini"
    hub_name = "chat"  # what a converted request becomes, for the log

    def credential(self, request: HttpRequest) -> str:
        return credential(request)

    def error_response(self, error: RelayError) -> HttpResponse:
        return error_response(error)

    def log_note(self, native: bool) -> str:
        target = "passed through" if native else f"converted to {self.hub_name}"
        return f"gemini {self.endpoint.name}, {target}: "


class GeminiGenerate(GeminiFormat):
    """generateContent / streamGenerateContent; `sse`: the client asked for `alt=sse`."""

    def __init__(self, sse: bool) -> None:
        self.endpoint = GENERATE
        self.sse = sse

    def native_for(self, channel_type: str, upstream_model: str) -> bool:
        return channel_type == "gemini" or (channel_type == "vertex" and upstream_model.startswith("gemini"))

    def to_hub(self, request: RelayRequest) -> RelayRequest:
        chat = gemini_convert.to_chat(request.body, request.model, request.stream)
        return RelayRequest("chat", request.model, chat, orjson.dumps(chat), request.stream, request.stream)

    def whole(self, request: RelayRequest, body: bytes, answer_id: str, usage: Usage) -> bytes:
        return orjson.dumps(gemini_convert.from_chat(orjson.loads(body), request.model, answer_id, usage))

    def stream_writer(self, request: RelayRequest, answer_id: str, input_tokens: int) -> StreamWriter:
        framing = ServerSentEvents() if self.sse else JsonArray()
        return ConvertedStream(gemini_convert.GenerateStream(request.model, answer_id), framing)

    def native_writer(self) -> StreamWriter:
        return PassedThrough() if self.sse else PassedThroughArray()


class GeminiEmbed(GeminiFormat):
    """embedContent / batchEmbedContents."""

    hub_name = "embeddings"

    def __init__(self, method: str) -> None:
        self.endpoint = self.embed = EmbedContent(method)

    def native_for(self, channel_type: str, upstream_model: str) -> bool:
        return channel_type == "gemini"

    def to_hub(self, request: RelayRequest) -> RelayRequest:
        body = gemini_convert.to_embeddings(request.body, request.model, self.embed.batch)
        return RelayRequest(EMBEDDINGS.name, request.model, body, orjson.dumps(body), False, False, "/v1/embeddings")

    def whole(self, request: RelayRequest, body: bytes, answer_id: str, usage: Usage) -> bytes:
        return orjson.dumps(gemini_convert.from_embeddings(orjson.loads(body), self.embed.batch))


GENERATE = GenerateContent()
GENERATE_SSE = GeminiGenerate(sse=True)
GENERATE_ARRAY = GeminiGenerate(sse=False)
EMBED = GeminiEmbed(GEMINI_EMBED)
BATCH_EMBED = GeminiEmbed(GEMINI_BATCH_EMBED)


def format_for(method: str, alt: str | None) -> InboundFormat | None:
    """The format that serves `models/{model}:{method}`; None for a method the gateway does not serve."""
    if method in (GEMINI_GENERATE, GEMINI_STREAM):
        return GENERATE_SSE if alt == "sse" else GENERATE_ARRAY
    return {GEMINI_EMBED: EMBED, GEMINI_BATCH_EMBED: BATCH_EMBED}.get(method)
