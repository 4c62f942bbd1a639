"""The interface every provider adaptor implements, and what the relay hands it.

An adaptor turns the client's OpenAI request into the provider's HTTP request, and the provider's answer
(whole, or event by event) back into OpenAI's format, reporting usage when the provider gives it.
"""

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

import orjson

from channels_app.channel_types import ChannelType, Check, OldType
from channels_app.routing import ChannelInfo
from gateway_project.safe_text import is_header_safe


@dataclass
class Usage:
    """Tokens of one answer, in OpenAI's convention whatever the provider's: `prompt_tokens` is every input
    token, cached and cache-written ones included (the uncached rest is `uncached_prompt_tokens`), and
    `completion_tokens` every output token, reasoning included."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0  # input served from the provider's prompt cache
    cache_write_5m_tokens: int = 0  # input written to a cache that lives 5 minutes (Anthropic's default)
    cache_write_1h_tokens: int = 0  # input written to a cache that lives 1 hour
    reasoning_tokens: int = 0  # output the model spent thinking (part of completion_tokens)

    @property
    def uncached_prompt_tokens(self) -> int:
        return max(
            0, self.prompt_tokens - self.cache_read_tokens - self.cache_write_5m_tokens - self.cache_write_1h_tokens
        )

    @property
    def is_empty(self) -> bool:
        return self.prompt_tokens == 0 and self.completion_tokens == 0


# RelayRequest.endpoint of a client's request in Anthropic's own format (relay.formats.anthropic_messages), which
# the adaptors that speak it pass through.
ANTHROPIC_MESSAGES = "messages"
ANTHROPIC_COUNT_TOKENS = "messages_count_tokens"
# The same for OpenAI's Responses API (relay.formats.openai_responses): creating a response, and the calls on a
# stored one (retrieve, delete, cancel, input items), sent with the client's method, path and query.
OPENAI_RESPONSES = "responses"
OPENAI_STORED_RESPONSE = "stored_response"
# ... and in Gemini's (relay.formats.gemini_native): its method names, as they end the model's URL.
GEMINI_GENERATE = "generateContent"
GEMINI_STREAM = "streamGenerateContent"
GEMINI_COUNT_TOKENS = "countTokens"
GEMINI_EMBED = "embedContent"
GEMINI_BATCH_EMBED = "batchEmbedContents"
GEMINI_METHODS = (GEMINI_GENERATE, GEMINI_STREAM, GEMINI_COUNT_TOKENS, GEMINI_EMBED, GEMINI_BATCH_EMBED)


@dataclass
class RelayRequest:
    """The client's request as parsed once by the relay."""

    endpoint: str  # "chat", ...
    model: str
    body: dict
    raw: bytes
    stream: bool
    wants_usage: bool  # the client asked for stream_options.include_usage
    path: str = "/v1/chat/completions"
    content_type: str = "application/json"
    passthrough: bool = False  # the answer is relayed as is (audio bytes, transcripts), not parsed as JSON
    headers: dict[str, str] = field(default_factory=dict)  # the client's headers an adaptor forwards as they are
    method: str = "POST"


@dataclass
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    content: bytes
    method: str = "POST"

    def __post_init__(self) -> None:
        # Keys are checked when a channel is saved (channels_app.models.Channel.clean), but a row saved before
        # that may hold a line break: such a channel fails like an upstream would, not the gateway.
        if not all(is_header_safe(value) for value in self.headers.values()):
            message = "the channel's key or settings cannot be sent in an HTTP header; an operator must replace it"
            raise UpstreamFailed(UpstreamFailure(500, message, code="invalid_channel_key"))


@dataclass
class UpstreamFailure:
    """A provider error normalised to OpenAI's error fields.

    `permanent`: the adaptor read, from the provider's structured fields (never from the message, which
    may quote the client's input), that the channel's credential or account cannot serve anyone.
    """

    status: int
    message: str
    type: str | None = None
    code: str | int | None = None
    param: str | None = None
    permanent: bool = False


class TextParts:
    """A stream's text, appended delta by delta for local counting. Deltas are often a few characters, so
    every BATCH of them is joined into one string: a long answer is then held in a few large strings rather
    than millions of small ones (about 50 bytes of overhead each), and no text is ever joined twice."""

    BATCH = 4096

    def __init__(self) -> None:
        self.batches: list[str] = []
        self.recent: list[str] = []
        self.size = 0  # characters

    def append(self, part: str) -> None:
        self.recent.append(part)
        self.size += len(part)
        if len(self.recent) == self.BATCH:
            self.batches.append("".join(self.recent))
            self.recent = []

    def __str__(self) -> str:
        return "".join(self.batches + self.recent)


@dataclass
class StreamState:
    """What a stream converter learnt so far: usage if the provider sent it, and the text delivered."""

    usage: Usage | None = None
    # The input counts some providers send before their final usage (Anthropic's message_start, each of
    # Gemini's events): a stream that ends without the final usage still bills its cache split.
    input_usage: Usage | None = None
    usage_sent: bool = False  # a usage chunk already went to the client
    chunk_id: str = ""
    created: int = 0
    text_parts: TextParts = field(default_factory=TextParts)
    max_tool_calls: int = 0

    @property
    def text(self) -> str:
        return str(self.text_parts)


class StreamConverter:
    """Turns provider stream payloads into OpenAI chunk payloads (without `data:` framing)."""

    def __init__(self, request: RelayRequest) -> None:
        self.request = request
        self.state = StreamState()

    def feed(self, payload: bytes) -> list[bytes]:
        raise NotImplementedError

    def finish(self) -> list[bytes]:
        """Chunks to send after the provider's last event (before `[DONE]`)."""
        return []


class FirstEventStream(StreamConverter):
    """A stream whose format shows in its first event (a channel type whose models answer in several formats:
    Vertex, Bedrock), handed to the converter `choose` picks for that event."""

    def __init__(self, request: RelayRequest, choose: Callable[[bytes], StreamConverter], slug: str) -> None:
        super().__init__(request)
        self.choose = choose
        self.slug = slug
        self.inner: StreamConverter | None = None

    def feed(self, payload: bytes) -> list[bytes]:
        if self.inner is None:
            self.inner = self.choose(payload)
            self.state = self.inner.state  # the relay reads usage and the delivered text from here
        return self.inner.feed(payload)

    def finish(self) -> list[bytes]:
        if self.inner is None:
            message = f"{self.slug} closed the stream without any event"
            raise UpstreamFailed(UpstreamFailure(502, message, "upstream_error"))
        return self.inner.finish()


class Provider:
    """What a provider module declares about its channel type. The adaptor registries register it in
    channels_app.channel_types at start-up, whence validation, admin, the API and the importer read it.

    Each adaptor class declares its own `slug`, `label` and `old_types`, even one that extends another
    adaptor: it is another type (tests/channels_app/test_channel_types.py checks).
    """

    slug = ""
    label = ""  # shown in admin
    key_in_headers = True  # False: the key is a document the adaptor signs requests with (Vertex)
    check: Check | None = None  # the type's own rules for a channel's key and config (a staticmethod)
    old_types: tuple[OldType, ...] = ()  # the one-api / new-api type numbers it imports (channel_types.both, ...)
    default_base_url = ""
    default_models: tuple[str, ...] = ()  # what admin fills in for a new channel of the type

    def channel_type(self) -> ChannelType:
        return ChannelType(
            self.slug,
            self.label,
            self.key_in_headers,
            self.check,
            self.old_types,
            self.default_base_url,
            self.default_models,
        )


class Adaptor(Provider):
    async def prepare(self, channel: ChannelInfo) -> None:
        """Fetch what `build_request` needs but cannot get synchronously (Vertex's OAuth token). The relay
        and the channel test await it just before `build_request`; it may raise UpstreamFailed."""

    def build_request(self, request: RelayRequest, channel: ChannelInfo) -> UpstreamRequest:
        raise NotImplementedError

    def sign(self, outgoing: UpstreamRequest, channel: ChannelInfo) -> UpstreamRequest:
        """The request as it is sent, signed over its final bytes by a provider that signs each request (AWS's
        SigV4); the last step before sending, after anything that changes the request."""
        return outgoing

    def stream_bytes(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """A stream answer's body as server-sent events, which the relay reads (relay.sse) and a pass-through
        relays: the body itself, unless the provider streams another framing (AWS's binary event stream)."""
        return chunks

    def convert_response(self, request: RelayRequest, content: bytes) -> tuple[bytes, Usage | None, str]:
        """(OpenAI body, usage or None, completion text for local counting)."""
        raise NotImplementedError

    def stream_converter(self, request: RelayRequest) -> StreamConverter:
        raise NotImplementedError

    def parse_error(self, status: int, content: bytes) -> UpstreamFailure:
        return openai_style_error(status, content)

    def error_answer(self, status: int, headers: Mapping[str, str], content: bytes) -> UpstreamFailure:
        """An error answer read with its headers, for a provider that names the error there (AWS's
        x-amzn-ErrorType); the others' bodies say it all (`parse_error`)."""
        return self.parse_error(status, content)

    def base_url(self, channel: ChannelInfo) -> str:
        return channel.base_url or self.default_base_url

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest | None:
        """The GET that asks the upstream which models it serves (admin's Fetch models); None: the provider
        has no such list."""
        return None

    def model_names(self, content: bytes) -> list[str]:
        """The names in the answer to `model_list_request` (OpenAI's and Anthropic's `data[].id`)."""
        return names_in(content, "data", "id")


# OpenAI's codes and types (kept by Azure and the OpenAI-compatible providers) for a key or account that
# cannot serve anyone. Not `permission_error`: gateways upstream (this one included) answer a model their
# key may not use with it, and the client picks the model.
DEAD_ACCOUNT_CODES = {"invalid_api_key", "account_deactivated", "billing_not_active", "insufficient_quota"}
DEAD_ACCOUNT_TYPES = {"insufficient_quota", "authentication_error"}


def openai_style_error(status: int, content: bytes) -> UpstreamFailure:
    """Read `{"error": {...}}` and the other shapes providers use; fall back to the status line."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            kind, code = error.get("type"), error.get("code")
            dead = str(kind) in DEAD_ACCOUNT_TYPES or str(code) in DEAD_ACCOUNT_CODES
            return UpstreamFailure(status, str(error["message"]), kind, code, error.get("param"), dead)
        if isinstance(error, str) and error:
            return UpstreamFailure(status, error)
        for name in ("message", "msg", "err", "error_msg", "detail"):
            if isinstance(body.get(name), str) and body[name]:
                return UpstreamFailure(status, body[name])
            if isinstance(body.get(name), dict | list) and body[name]:  # Mistral's validation errors
                return UpstreamFailure(status, orjson.dumps(body[name]).decode())
    return UpstreamFailure(status, f"upstream answered with status {status}")


class UpstreamFailed(Exception):
    """Raised by an adaptor when a 200 answer is unusable (invalid JSON, an error body)."""

    def __init__(self, failure: UpstreamFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class ErrorEventRelayed(UpstreamFailed):
    """A passed-through stream's own error event: the client already has it in the upstream's bytes."""


def load_json(content: bytes) -> dict:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise UpstreamFailed(UpstreamFailure(502, "upstream returned invalid JSON", "upstream_error")) from None
    if not isinstance(body, dict):
        raise UpstreamFailed(UpstreamFailure(502, "upstream returned an unexpected JSON value", "upstream_error"))
    if isinstance(body.get("error"), dict | str) and body.get("error"):
        failure = openai_style_error(502, content)
        raise UpstreamFailed(failure)
    return body


def names_in(content: bytes, list_key: str, name_key: str) -> list[str]:
    """The `name_key` string of every item of the JSON answer's `list_key` array (a provider's model list)."""
    items = load_json(content).get(list_key)
    found = [item.get(name_key) for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    return [name for name in found if isinstance(name, str) and name]


MASK = "***"
MIN_SECRET_LENGTH = 8  # shorter values (Ollama's placeholder key "x") are ordinary words, not secrets
CREDENTIAL_HEADERS = {
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "mj-api-secret",
    "x-amz-security-token",
}
SERVICE_ACCOUNT_SECRETS = ("private_key", "private_key_id")


class SentRequest(Protocol):
    """An UpstreamRequest, or the httpx.Request that carried it."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def url(self) -> object: ...


def scrub(message: str, key: str, sent: SentRequest | None = None) -> str:
    """The message without any secret of the channel. Upstreams quote what they were sent ("Incorrect API
    key provided: sk-..."), and a failure's message reaches the client, the error log, the channel's
    status_reason, the manage log and the server log."""
    for secret in sorted(channel_secrets(key, sent), key=len, reverse=True):  # a whole before its parts
        message = message.replace(secret, MASK)
    return message


def channel_secrets(key: str, sent: SentRequest | None) -> set[str]:
    """The key, its parts, and every credential the request carried: the Authorization value and the token
    in it (a Zhipu JWT, Vertex's OAuth access token), x-api-key / api-key / x-goog-api-key /
    mj-api-secret / x-amz-security-token, a `key=` query parameter."""
    found = {key, *key_parts(key)}
    if sent is not None:
        for name, value in sent.headers.items():
            if name.lower() in CREDENTIAL_HEADERS:
                found |= {value, value.partition(" ")[2]}
        found.update(parse_qs(urlsplit(str(sent.url)).query).get("key", ()))
    return {secret for secret in found if len(secret) >= MIN_SECRET_LENGTH}


def key_parts(key: str) -> Iterable[str]:
    """Zhipu's `id.secret` halves; AWS's `id|secret|region|token` parts; a Vertex service account's private key
    (as parsed and as JSON escapes it) and its id."""
    if key.count(".") == 1:
        return key.split(".")
    if "|" in key:
        return key.split("|")
    try:
        account = orjson.loads(key) if key.lstrip().startswith("{") else None
    except orjson.JSONDecodeError:
        return ()
    if not isinstance(account, dict):
        return ()
    values = [account.get(name) for name in SERVICE_ACCOUNT_SECRETS]
    strings = [value for value in values if isinstance(value, str)]
    return strings + [value.replace("\n", "\\n") for value in strings]
