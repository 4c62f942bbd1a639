"""The client-facing endpoints: how each validates its body, counts its prompt, reserves and is priced.

Every endpoint goes through the same request path (relay.service); only these rules differ.
"""

import asyncio
import io

import orjson
from django.conf import settings
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParser, MultiPartParserError

from billing.pricing import Quote, offers_image_size
from gateway_project.safe_text import MODEL_NAME_RULE, is_model_name
from relay import media, tokenizer
from relay.adaptors.base import RelayRequest, Usage
from relay.adaptors.openai_format import rerank_prompt_tokens
from relay.errors import RelayError
from relay.tokenizer import Measure, count_messages, count_text, count_tools

MAX_MODEL_NAME = 128  # billing.models.Log.model
# orjson reads 1024 levels of nesting but writes only this many, and adaptors write the body they change.
MAX_DEPTH = 254
LARGE_BODY_BYTES = 64 * 1024
MAX_CHOICES = 128  # OpenAI's bound on `n`
MAX_BEST_OF = 20  # and on the completions endpoint's `best_of`


def load_body(raw: bytes) -> dict:
    if not raw:
        raise RelayError(400, "request body is empty: send a JSON object", "invalid_body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RelayError(400, f"request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise RelayError(400, "request body must be a JSON object", "invalid_body")
    # Counting brackets is cheap; only a body with that many is written once to see whether orjson can.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        try:
            orjson.dumps(body)
        except orjson.JSONEncodeError:
            raise RelayError(400, f"request body is nested deeper than {MAX_DEPTH} levels", "invalid_body") from None
    return body


def require_model(body: dict, default: str | None = None) -> str:
    model = body.get("model", default)
    if not isinstance(model, str) or not model.strip():
        raise RelayError(400, "you must provide a model parameter", "missing_model", param="model")
    # The name goes into the consume log, whose column PostgreSQL and MySQL hold to its length.
    if len(model) > MAX_MODEL_NAME:
        message = f"model must be a name of at most {MAX_MODEL_NAME} characters"
        raise RelayError(400, message, "invalid_model", param="model")
    # And into upstream URLs (percent-encoded, see gateway_project.safe_text), which it must not steer.
    if not is_model_name(model):
        raise RelayError(400, f"model {MODEL_NAME_RULE}", "invalid_model", param="model")
    return model


def stream_flags(body: dict) -> tuple[bool, bool]:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RelayError(400, "stream must be a boolean", "invalid_value", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RelayError(400, "stream_options must be an object", "invalid_value", param="stream_options")
    return bool(stream), bool(stream and options and options.get("include_usage"))


def positive_int(body: dict, name: str, limit: int = 2**30) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= limit:
        raise RelayError(400, f"{name} must be a positive integer", "invalid_value", param=name)
    return value


def completion_budget(body: dict) -> int:
    return (
        positive_int(body, "max_completion_tokens") or positive_int(body, "max_tokens") or settings.PRE_CONSUMED_TOKENS
    )


def choices(body: dict) -> int:
    """How many answers the request asks for (`n`), each of which may use the whole completion budget."""
    return positive_int(body, "n", limit=MAX_CHOICES) or 1


def generations(body: dict) -> int:
    """How many completions a legacy completions request makes the upstream generate, and bill: `best_of` (at
    least `n`, which it picks from) for each prompt of a batch."""
    n = choices(body)
    best_of = positive_int(body, "best_of", limit=MAX_BEST_OF)
    if best_of is not None and best_of < n:
        raise RelayError(400, "best_of must be at least n", "invalid_value", param="best_of")
    return (best_of or n) * prompt_count(body["prompt"])


def prompt_count(prompt: object) -> int:
    """A list of strings or of token arrays is a batch, one prompt per item; anything else is one prompt."""
    if isinstance(prompt, list):
        return sum(isinstance(item, str | list) for item in prompt) or 1
    return 1


def text_of(value: object) -> str:
    """The text of a prompt or input: a string, a list of strings, or token arrays (counted as tokens)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(item for item in value if isinstance(item, str))
    return ""


async def count_prompt(endpoint: "Endpoint", request: RelayRequest) -> int:
    """The prompt's exact tokens, on a worker thread when the body is large or the model's encoding is not
    built yet: tiktoken lets go of the GIL, so the event loop goes on serving everyone else while a huge
    prompt is counted (a megabyte of one repeated letter takes about half a second) or a BPE table is loaded."""
    exact = tokenizer.Tokens(request.model)
    if counts_at_once(request.model, len(request.raw)):
        return endpoint.prompt_tokens(request, exact)
    return await asyncio.to_thread(endpoint.prompt_tokens, request, exact)


async def count_usage(endpoint: "Endpoint", request: RelayRequest, prompt_tokens: int, text: str) -> Usage:
    """An answer's usage counted locally, on a worker thread as `count_prompt` is: a stream's text may be
    tens of megabytes (16 MB took 11 s on the event loop, stopping every other request meanwhile)."""
    if counts_at_once(request.model, len(text)):
        return endpoint.local_usage(request, prompt_tokens, text)
    return await asyncio.to_thread(endpoint.local_usage, request, prompt_tokens, text)


def counts_at_once(model: str, size: int) -> bool:
    """Whether `size` bytes or characters of text can be counted on the event loop: a small text whose
    encoding is built already."""
    return size < LARGE_BODY_BYTES and tokenizer.is_ready(model)


def counts_images(request: RelayRequest) -> bool:
    """Whether the prompt's images are counted by the tile rule (GET_MEDIA_TOKEN, GET_MEDIA_TOKEN_NOT_STREAM)."""
    return settings.GET_MEDIA_TOKEN and (request.stream or settings.GET_MEDIA_TOKEN_NOT_STREAM)


def token_arrays(value: object) -> int:
    """Prompts given as token ids: [1, 2] or [[1, 2], [3]] count one token per id."""
    if isinstance(value, list) and value and all(isinstance(i, int) for i in value):
        return len(value)
    if isinstance(value, list):
        return sum(len(item) for item in value if isinstance(item, list))
    return 0


class Endpoint:
    """What every endpoint shares: billed by tokens, reserving the prompt once and every answer using its whole
    budget, no images. Each endpoint parses its own body and counts its own prompt, and overrides what else
    differs."""

    name: str  # RelayRequest.endpoint and the metrics' label

    def parse(self, raw: bytes, request: HttpRequest) -> RelayRequest:
        raise NotImplementedError

    def prompt_tokens(self, request: RelayRequest, measure: Measure) -> int:
        """The prompt's text in tokens (tokenizer.Tokens) or their upper bound (tokenizer.utf8_bytes)."""
        raise NotImplementedError

    def images(self, request: RelayRequest) -> list[media.ImagePart]:
        """The prompt's images to count by the tile rule (GET_MEDIA_TOKEN): only chat takes images."""
        return []

    def reservation(self, quote: Quote, request: RelayRequest, prompt_tokens: int) -> int:
        """The most the request can cost: the prompt once, uncached or written to a cache, whichever is dearer,
        and every answer using its whole budget."""
        return quote.hold(prompt_tokens, self.most_completion_tokens(request.body))

    def most_completion_tokens(self, body: dict) -> int:
        """The budget (`max_completion_tokens` or `max_tokens`) times the answers (`n`); raises RelayError (400)
        when either is not a valid positive integer."""
        return completion_budget(body) * choices(body)

    def cost(self, quote: Quote, request: RelayRequest, usage: Usage) -> tuple[int, str]:
        """(quota, the formula as the log shows it): cached and cache-written input at their own prices."""
        lanes = {
            "cache_read": usage.cache_read_tokens,
            "cache_write_5m": usage.cache_write_5m_tokens,
            "cache_write_1h": usage.cache_write_1h_tokens,
        }
        return (
            quote.cost(usage.prompt_tokens, usage.completion_tokens, **lanes),
            quote.explain(usage.prompt_tokens, usage.completion_tokens, **lanes),
        )

    def local_usage(self, request: RelayRequest, prompt_tokens: int, text: str) -> Usage:
        return Usage(prompt_tokens, count_text(request.model, text))


class Streamable(Endpoint):
    """An endpoint whose answer may stream: chat and legacy completions."""

    def parse(self, raw: bytes, request: HttpRequest) -> RelayRequest:
        body = load_body(raw)
        model = require_model(body)
        self.check_fields(body)
        self.most_completion_tokens(body)
        stream, wants_usage = stream_flags(body)
        return RelayRequest(self.name, model, body, raw, stream, wants_usage, request.path)

    def check_fields(self, body: dict) -> None:
        """Raises RelayError (400) when a field of this endpoint's own is missing or invalid."""
        raise NotImplementedError


class Chat(Streamable):
    """Chat completions: messages, tools, and the only prompt that may hold images."""

    name = "chat"

    def check_fields(self, body: dict) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RelayError(400, "messages must be a non-empty array", "missing_messages", param="messages")
        if not all(isinstance(message, dict) for message in messages):
            raise RelayError(400, "every message must be an object", "invalid_messages", param="messages")

    def prompt_tokens(self, request: RelayRequest, measure: Measure) -> int:
        return count_messages(request.body["messages"], measure) + count_tools(request.body, measure)

    def images(self, request: RelayRequest) -> list[media.ImagePart]:
        """Cheap: nothing is read yet (relay.media.image_tokens does that)."""
        return media.images_in(request.body["messages"]) if counts_images(request) else []


class Completions(Streamable):
    name = "completions"

    def check_fields(self, body: dict) -> None:
        if "prompt" not in body:
            raise RelayError(400, "you must provide a prompt", "missing_prompt", param="prompt")
        completion_budget(body)

    def prompt_tokens(self, request: RelayRequest, measure: Measure) -> int:
        prompt = request.body["prompt"]
        return measure(text_of(prompt)) + token_arrays(prompt)

    def most_completion_tokens(self, body: dict) -> int:
        return (positive_int(body, "max_tokens") or 16) * generations(body)


class Embeddings(Endpoint):
    name = "embeddings"
    field = "input"
    default_model: str | None = None

    def parse(self, raw: bytes, request: HttpRequest) -> RelayRequest:
        body = load_body(raw)
        path_model = request.resolver_match.kwargs.get("model") if request.resolver_match else None
        model = require_model(body, default=path_model or self.default_model)
        if self.field not in body:
            raise RelayError(400, f"you must provide {self.field}", f"missing_{self.field}", param=self.field)
        return RelayRequest(self.name, model, body, raw, False, False, request.path)

    def prompt_tokens(self, request: RelayRequest, measure: Measure) -> int:
        value = request.body[self.field]
        return measure(text_of(value)) + token_arrays(value)

    def reservation(self, quote: Quote, request: RelayRequest, prompt_tokens: int) -> int:
        return quote.cost(prompt_tokens, 0)

    def local_usage(self, request: RelayRequest, prompt_tokens: int, text: str) -> Usage:
        return Usage(prompt_tokens, 0)


class Rerank(Embeddings):
    """Jina-format rerank (Jina's `/v1/rerank`): billed like embeddings, on the query and documents' tokens."""

    name = "rerank"

    def parse(self, raw: bytes, request: HttpRequest) -> RelayRequest:
        body = load_body(raw)
        model = require_model(body)
        if not isinstance(body.get("query"), str) or not body["query"].strip():
            raise RelayError(400, "query must be a non-empty string", "invalid_query", param="query")
        documents = body.get("documents")
        if not isinstance(documents, list) or not documents or not all(isinstance(d, str | dict) for d in documents):
            raise RelayError(
                400, "documents must be a non-empty array of strings or objects", "invalid_documents", param="documents"
            )
        top_n = body.get("top_n")
        if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 0):
            raise RelayError(400, "top_n must be a non-negative integer", "invalid_value", param="top_n")
        if body.get("return_documents") is not None and not isinstance(body["return_documents"], bool):
            raise RelayError(400, "return_documents must be a boolean", "invalid_value", param="return_documents")
        return RelayRequest(self.name, model, body, raw, False, False, request.path)

    def prompt_tokens(self, request: RelayRequest, measure: Measure) -> int:
        return rerank_prompt_tokens(request, measure)


class Moderations(Embeddings):
    name = "moderations"
    default_model = "omni-moderation-latest"


class Images(Endpoint):
    """Billed per image (billing.pricing.Quote.image_cost), whatever the upstream reports."""

    name = "images"

    def parse(self, raw: bytes, request: HttpRequest) -> RelayRequest:
        body = load_body(raw)
        model = require_model(body, default="dall-e-2")
        if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            raise RelayError(400, "you must provide a prompt", "missing_prompt", param="prompt")
        positive_int(body, "n", limit=10)
        size = body.get("size", "1024x1024")
        if not isinstance(size, str) or not offers_image_size(model, size):
            raise RelayError(400, f"size {size!r} is not supported for {model}", "invalid_value", param="size")
        if not isinstance(body.get("quality", "standard"), str):
            raise RelayError(400, "quality must be a string", "invalid_value", param="quality")
        return RelayRequest(self.name, model, {**body, "model": model}, raw, False, False, request.path)

    def prompt_tokens(self, request: RelayRequest, measure: Measure) -> int:
        return 0

    def reservation(self, quote: Quote, request: RelayRequest, prompt_tokens: int) -> int:
        return self.cost(quote, request, Usage())[0]

    def cost(self, quote: Quote, request: RelayRequest, usage: Usage) -> tuple[int, str]:
        body = request.body
        return quote.image_cost(body.get("size", "1024x1024"), body.get("quality", "standard"), body.get("n") or 1)


class Speech(Endpoint):
    """Text to speech: billed by input characters (billing.pricing.Quote.speech_cost); audio bytes pass through."""

    name = "speech"

    def parse(self, raw: bytes, request: HttpRequest) -> RelayRequest:
        body = load_body(raw)
        model = require_model(body, default="tts-1")
        if not isinstance(body.get("input"), str) or not body["input"]:
            raise RelayError(400, "you must provide input text", "missing_input", param="input")
        relay_request = RelayRequest(self.name, model, {**body, "model": model}, raw, False, False, request.path)
        relay_request.passthrough = True
        return relay_request

    def prompt_tokens(self, request: RelayRequest, measure: Measure) -> int:
        return len(request.body["input"])

    def reservation(self, quote: Quote, request: RelayRequest, prompt_tokens: int) -> int:
        return quote.cost(prompt_tokens, 0)

    def local_usage(self, request: RelayRequest, prompt_tokens: int, text: str) -> Usage:
        return Usage(prompt_tokens, 0)

    def cost(self, quote: Quote, request: RelayRequest, usage: Usage) -> tuple[int, str]:
        return quote.speech_cost(usage.prompt_tokens)


class Transcriptions(Endpoint):
    """Speech to text (multipart, relayed byte for byte): billed by the tokens of the returned text."""

    name = "transcriptions"

    def parse(self, raw: bytes, request: HttpRequest) -> RelayRequest:
        content_type = request.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            raise RelayError(400, "send the audio as multipart/form-data", "invalid_content_type")
        fields = multipart_fields(raw, request)
        if "file" not in fields:
            raise RelayError(400, "you must provide a file", "missing_file", param="file")
        model = require_model(fields, default="whisper-1")
        relay_request = RelayRequest(self.name, model, fields, raw, False, False, request.path)
        relay_request.content_type = content_type
        relay_request.passthrough = True
        return relay_request

    def prompt_tokens(self, request: RelayRequest, measure: Measure) -> int:
        return 0

    def local_usage(self, request: RelayRequest, prompt_tokens: int, text: str) -> Usage:
        return Usage(0, count_text(request.model, transcript_text(text)))


def multipart_fields(raw: bytes, request: HttpRequest) -> dict:
    """The form's text fields (plus `file` present or not); the raw body itself is forwarded unchanged."""
    meta = {**request.META, "CONTENT_LENGTH": str(len(raw))}
    try:
        data, files = MultiPartParser(meta, io.BytesIO(raw), request.upload_handlers, "utf-8").parse()
    except MultiPartParserError:
        raise RelayError(400, "the multipart body could not be parsed", "invalid_body") from None
    fields = {name: data.get(name) for name in data}
    if "file" in files:
        fields["file"] = files["file"].name
    return fields


def transcript_text(content: str) -> str:
    """The text of a transcription answer: JSON's `text`, or the body itself (text, srt, vtt)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content
    return body.get("text", "") if isinstance(body, dict) else content


CHAT = Chat()
COMPLETIONS = Completions()
EMBEDDINGS = Embeddings()
MODERATIONS = Moderations()
RERANK = Rerank()
IMAGES = Images()
SPEECH = Speech()
TRANSCRIPTIONS = Transcriptions()
