"""Anthropic Messages API behind the OpenAI chat format (specs: anthropic.md sections 1-7).

Decisions worth knowing:
- `max_tokens` is required by Anthropic; when the client sends none we fill DEFAULT_MAX_TOKENS, or
  LEGACY_MAX_TOKENS for the claude-3.0 / claude-2 families whose output is capped at 4096.
- Image parts with an http(s) URL are passed as a `{"type": "url"}` image source, which the current API
  fetches itself: `build_request` is synchronous and runs on the event loop, so it cannot download.
  Deployments that predate URL sources (old Vertex snapshots) answer 400 for those requests.
- Cache reads and writes are added to `prompt_tokens` (OpenAI's prompt size includes them) and billed at
  the input ratio, since billing has no cache ratios yet; reads also appear as `cached_tokens`.
- A stream's usage is committed at `message_delta`, when both counts are final. A stream cut before it
  is billed by local counting of what was delivered rather than by the input count alone.
- A client that speaks the Messages API itself (RelayRequest.endpoint "messages", see relay.formats) is passed
  through: its raw body is forwarded (re-serialised only to map the model), with its `anthropic-version` and
  `anthropic-beta` headers, and the answer is relayed as it came; `NativeStream` only reads the events for
  the usage and the text.
"""

from collections.abc import Callable

import orjson

from channels_app.channel_types import both
from channels_app.routing import ChannelInfo
from relay.adaptors.base import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_MESSAGES,
    Adaptor,
    ErrorEventRelayed,
    RelayRequest,
    StreamConverter,
    UpstreamFailed,
    UpstreamFailure,
    UpstreamRequest,
    Usage,
    load_json,
    openai_style_error,
)
from relay.adaptors.openai_format import (
    BlockTurns,
    ChunkWriter,
    DataUrl,
    ToolCallDeltas,
    assistant_message,
    client_tool_calls,
    completion_body,
    completion_text,
    content_parts,
    file_data_url,
    image_url_of,
    json_or_none,
    new_completion_id,
    openai_tool_call,
    parse_data_url,
    reported_usage,
    request_json,
    require_chat,
    stop_sequences,
    stream_event,
    token_count,
    tool_functions,
    unsupported,
    usage_object,
)

SLUG = "anthropic"
API_VERSION = "2023-06-01"
NATIVE_ENDPOINTS = (ANTHROPIC_MESSAGES, ANTHROPIC_COUNT_TOKENS)
DEFAULT_MAX_TOKENS = 8192
LEGACY_MAX_TOKENS = 4096
LEGACY_MODEL_PREFIXES = ("claude-3-haiku", "claude-3-sonnet", "claude-3-opus", "claude-2", "claude-instant")
# Anthropic rejects empty text blocks and conversations that open with an assistant turn.
PLACEHOLDER_TEXT = "..."

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

ERROR_STATUS: dict[object, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 503,
}
OVERLOADED = 529  # Anthropic's own status; remapped to 503 for clients that do not know it
DEAD_ACCOUNT_TYPES = {"authentication_error", "permission_error", "billing_error"}  # the key cannot serve


def finish_reason(stop_reason: object) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def default_max_tokens(model: str) -> int:
    return LEGACY_MAX_TOKENS if model.startswith(LEGACY_MODEL_PREFIXES) else DEFAULT_MAX_TOKENS


# --- request: OpenAI chat -> Anthropic Messages ---


def base64_source(data_url: DataUrl) -> dict:
    return {"type": "base64", "media_type": data_url.mime, "data": data_url.data}


def image_block(url: str) -> dict:
    data_url = parse_data_url(url)
    if data_url is None:
        return {"type": "image", "source": {"type": "url", "url": url}}
    return {"type": "image", "source": base64_source(data_url)}


def content_blocks(content: object) -> list[dict]:
    """OpenAI content (string or parts) -> Anthropic blocks; empty text is dropped."""
    blocks = []
    for part in content_parts(content):
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(image_block(image_url_of(part)))
        elif kind == "file":
            blocks.append({"type": "document", "source": base64_source(file_data_url(part, SLUG))})
        else:
            raise unsupported(f"content part {kind!r}", SLUG)
    return blocks


def tool_use_blocks(message: dict) -> list[dict]:
    return [
        {"type": "tool_use", "id": call_id, "name": name, "input": arguments}
        for call_id, name, arguments in client_tool_calls(message)
    ]


def tool_result_block(message: dict) -> dict:
    content = message.get("content")
    return {
        "type": "tool_result",
        "tool_use_id": message.get("tool_call_id") or "",
        "content": content if isinstance(content, str) else content_blocks(content),
    }


TURNS = BlockTurns(
    SLUG, content_blocks, tool_use_blocks, tool_result_block, lambda: {"type": "text", "text": PLACEHOLDER_TEXT}
)


def anthropic_tools(tools: object) -> list[dict]:
    converted = []
    for function in tool_functions(tools):
        definition = {
            "name": function.get("name") or "",
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            definition["description"] = function["description"]
        converted.append(definition)
    return converted


def anthropic_tool_choice(body: dict) -> dict | None:
    choice = body.get("tool_choice")
    if choice == "required":
        converted: dict[str, object] = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        converted = {"type": "tool", "name": choice["function"].get("name") or ""}
    elif choice == "auto" or body.get("parallel_tool_calls") is False:
        converted = {"type": "auto"}
    else:
        return None
    if body.get("parallel_tool_calls") is False:
        converted["disable_parallel_tool_use"] = True
    return converted


def sampling_fields(body: dict) -> dict:
    fields: dict = {}
    temperature = body.get("temperature")
    if isinstance(temperature, int | float):
        fields["temperature"] = min(max(float(temperature), 0.0), 1.0)  # OpenAI allows up to 2
    for name in ("top_p", "top_k"):
        if isinstance(body.get(name), int | float):
            fields[name] = body[name]
    stops = stop_sequences(body.get("stop"))
    if stops:
        fields["stop_sequences"] = stops
    if isinstance(body.get("user"), str) and body["user"]:
        fields["metadata"] = {"user_id": body["user"]}
    if isinstance(body.get("thinking"), dict):
        fields["thinking"] = body["thinking"]  # a non-standard extra some clients send for Claude
    return fields


def messages_body(request: RelayRequest, model: str) -> dict:
    body = request.body
    system_texts, turns = TURNS.of(body["messages"])
    system = "\n".join(system_texts)
    out: dict = {
        "model": model,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens(model),
        "messages": turns,
        "stream": request.stream,
        **sampling_fields(body),
    }
    if system:
        out["system"] = system
    tools = anthropic_tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        choice = anthropic_tool_choice(body)
        if choice is not None:
            out["tool_choice"] = choice
    return out


# --- response: Anthropic -> OpenAI chat ---


def usage_of(raw: object) -> Usage:
    """Anthropic's usage in OpenAI's convention: its `input_tokens` are the uncached input only, beside the
    cache reads and the cache writes (split by lifetime in `cache_creation`; without the split, all 5-minute)."""
    written = token_count(raw, "cache_creation_input_tokens")
    split = raw.get("cache_creation") if isinstance(raw, dict) else None
    write_5m = token_count(split, "ephemeral_5m_input_tokens") if isinstance(split, dict) else written
    write_1h = token_count(split, "ephemeral_1h_input_tokens")
    cache_read = token_count(raw, "cache_read_input_tokens")
    return Usage(
        prompt_tokens=token_count(raw, "input_tokens") + cache_read + write_5m + write_1h,
        completion_tokens=token_count(raw, "output_tokens"),
        cache_read_tokens=cache_read,
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
    )


def latest_counts(earlier: dict, later: object) -> dict:
    """A stream's usage counts: message_delta's are cumulative and may repeat or update message_start's input
    counts, so each count is the latest that is not zero."""
    merged = dict(earlier)
    for name, value in later.items() if isinstance(later, dict) else ():
        if isinstance(value, dict):
            before = merged.get(name)
            merged[name] = latest_counts(before if isinstance(before, dict) else {}, value)
        elif value:
            merged[name] = value
    return merged


def failure_of(status: int, error: object) -> UpstreamFailure:
    error = error if isinstance(error, dict) else {}
    kind = error.get("type") if isinstance(error.get("type"), str) else None
    message = error.get("message") or f"anthropic answered with {kind or f'status {status}'}"
    return UpstreamFailure(status, str(message), kind, kind, permanent=kind in DEAD_ACCOUNT_TYPES)


def message_of(body: dict) -> dict:
    texts, reasoning, tool_calls = [], [], []
    for block in body.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
        elif kind == "tool_use":
            tool_calls.append(openai_tool_call(block.get("id") or "", block.get("name") or "", block.get("input")))
    return assistant_message("".join(texts), tool_calls, "".join(reasoning))


class AnthropicAdaptor(Adaptor):
    slug = SLUG
    label = "Anthropic Claude"
    old_types = (both(14),)
    default_base_url = "https://api.anthropic.com"

    def build_request(self, request: RelayRequest, channel: ChannelInfo) -> UpstreamRequest:
        if request.endpoint in NATIVE_ENDPOINTS:
            content = native_body(request, channel.upstream_model(request.model))
            return UpstreamRequest(self.url(channel, request.path), self.headers(channel, request.headers), content)
        require_chat(request, SLUG)
        body = messages_body(request, channel.upstream_model(request.model))
        return UpstreamRequest(url=self.url(channel), headers=self.headers(channel), content=request_json(body))

    def url(self, channel: ChannelInfo, path: str = "/v1/messages") -> str:
        base = self.base_url(channel)
        return base.removesuffix("/v1") + path

    def headers(self, channel: ChannelInfo, forwarded: dict[str, str] | None = None) -> dict[str, str]:
        """The channel's key; the client's anthropic-version and anthropic-beta on a pass-through."""
        return {
            "anthropic-version": API_VERSION,
            **(forwarded or {}),
            "x-api-key": channel.key,
            "Content-Type": "application/json",
        }

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest | None:
        url = self.base_url(channel).removesuffix("/v1") + "/v1/models?limit=1000"
        return UpstreamRequest(url, self.headers(channel), b"", "GET")

    def convert_response(self, request: RelayRequest, content: bytes) -> tuple[bytes, Usage | None, str]:
        if request.endpoint in NATIVE_ENDPOINTS:
            return native_answer(content)
        body = load_json(content)
        message = message_of(body)
        usage = usage_of(body.get("usage"))
        reason = finish_reason(body.get("stop_reason"))
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
        answer = completion_body(request, body.get("id") or new_completion_id(), [choice], usage_object(usage))
        return answer, reported_usage(usage), completion_text(message)

    def stream_converter(self, request: RelayRequest) -> StreamConverter:
        return NativeStream(request) if request.endpoint == ANTHROPIC_MESSAGES else AnthropicStream(request)

    def parse_error(self, status: int, content: bytes) -> UpstreamFailure:
        status = 503 if status == OVERLOADED else status
        body = json_or_none(content)
        if isinstance(body, dict) and body.get("type") == "error":
            return failure_of(status, body.get("error"))
        return openai_style_error(status, content)


def native_body(request: RelayRequest, model: str) -> bytes:
    """The client's own body: its bytes unless the channel maps the model."""
    return request.raw if model == request.model else request_json({**request.body, "model": model})


def message_text(body: dict) -> str:
    """A message's text, thinking and tool input, for local counting should its usage be missing."""
    parts = []
    for block in body.get("content") or ():
        if isinstance(block, dict):
            parts.append(block.get("text") or block.get("thinking") or "")
            if block.get("type") == "tool_use":
                parts.append(orjson.dumps(block.get("input")).decode())
    return "".join(parts)


def native_answer(content: bytes) -> tuple[bytes, Usage | None, str]:
    """A passed-through answer: its bytes, and what billing needs from them."""
    body = load_json(content)
    return content, reported_usage(usage_of(body.get("usage"))), message_text(body)


class NativeStream(StreamConverter):
    """A passed-through stream's events read for billing only (the relay writes the upstream's bytes): usage from
    message_start and message_delta, the text of the deltas. Each event is returned as it came."""

    DELTA_TEXT: dict[object, str] = {
        "text_delta": "text",
        "thinking_delta": "thinking",
        "input_json_delta": "partial_json",
    }

    def __init__(self, request: RelayRequest) -> None:
        super().__init__(request)
        self.counts: dict = {}
        self.stopped = False

    def feed(self, payload: bytes) -> list[bytes]:
        event = stream_event(payload, SLUG) or {}
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            text = delta.get(self.DELTA_TEXT.get(delta.get("type"), ""))
            if isinstance(text, str):
                self.state.text_parts.append(text)
        elif kind == "content_block_start" and (event.get("content_block") or {}).get("type") == "tool_use":
            self.state.max_tool_calls += 1
        elif kind in ("message_start", "message_delta"):
            usage = (event.get("message") or {}).get("usage") if kind == "message_start" else event.get("usage")
            self.counts = latest_counts(self.counts, usage)
            counted = reported_usage(usage_of(self.counts))
            if kind == "message_start":
                self.state.input_usage = counted
            else:
                self.state.usage = counted
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            error = event.get("error")
            kind = error.get("type") if isinstance(error, dict) else None
            raise ErrorEventRelayed(failure_of(ERROR_STATUS.get(kind, 502), error))
        return [payload]

    def finish(self) -> list[bytes]:
        if not self.stopped:
            raise UpstreamFailed(UpstreamFailure(502, "anthropic stream ended before message_stop", "upstream_error"))
        return []


class AnthropicStream(StreamConverter):
    """Anthropic's typed events -> OpenAI chunks; the relay adds the usage chunk and `[DONE]`."""

    def __init__(self, request: RelayRequest) -> None:
        super().__init__(request)
        self.writer = ChunkWriter(request, self.state)
        self.counts: dict = {}  # the usage counts of message_start, updated by message_delta
        self.tool_calls = ToolCallDeltas(self.writer)
        self.stopped = False

    def feed(self, payload: bytes) -> list[bytes]:
        event = stream_event(payload, SLUG) or {}
        handler = self.HANDLERS.get(event.get("type"))
        return handler(self, event) if handler else []

    def finish(self) -> list[bytes]:
        if not self.stopped:
            # Anthropic always ends with message_stop; without it the answer was cut short.
            raise UpstreamFailed(UpstreamFailure(502, "anthropic stream ended before message_stop", "upstream_error"))
        return []

    def on_message_start(self, event: dict) -> list[bytes]:
        message = event.get("message") or {}
        self.counts = latest_counts({}, message.get("usage"))
        self.state.input_usage = reported_usage(usage_of(self.counts))
        self.writer.start(message.get("id") or "")
        return [self.writer.chunk({"content": ""})]

    def on_block_start(self, event: dict) -> list[bytes]:
        block = event.get("content_block") or {}
        kind = block.get("type")
        if kind == "tool_use":
            return self.tool_calls.start(event.get("index"), block.get("id") or "", block.get("name") or "")
        if kind == "text" and block.get("text"):
            return [self.writer.chunk({"content": block["text"]})]
        return []

    def on_block_delta(self, event: dict) -> list[bytes]:
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [self.writer.chunk({"content": delta.get("text") or ""})]
        if kind == "thinking_delta":
            return [self.writer.chunk({"reasoning_content": delta.get("thinking") or ""})]
        if kind == "input_json_delta":
            return self.tool_calls.arguments(event.get("index"), delta.get("partial_json"))
        return []

    def on_block_stop(self, event: dict) -> list[bytes]:
        return self.tool_calls.stop(event.get("index"))

    def on_message_delta(self, event: dict) -> list[bytes]:
        self.counts = latest_counts(self.counts, event.get("usage"))
        self.state.usage = reported_usage(usage_of(self.counts))
        reason = finish_reason((event.get("delta") or {}).get("stop_reason"))
        return [self.writer.chunk({}, reason)]

    def on_message_stop(self, event: dict) -> list[bytes]:
        self.stopped = True
        return []

    def on_error(self, event: dict) -> list[bytes]:
        error = event.get("error")
        if not isinstance(error, dict):
            error = {}
        raise UpstreamFailed(failure_of(ERROR_STATUS.get(error.get("type"), 502), error))

    HANDLERS: dict[object, Callable[["AnthropicStream", dict], list[bytes]]] = {
        "message_start": on_message_start,
        "content_block_start": on_block_start,
        "content_block_delta": on_block_delta,
        "content_block_stop": on_block_stop,
        "message_delta": on_message_delta,
        "message_stop": on_message_stop,
        "error": on_error,
    }
