"""Ollama's native API behind the OpenAI chat and embeddings formats (spec: others.md section 2).

Decisions worth knowing:
- Chat uses the native `/api/chat` rather than Ollama's OpenAI-compatible endpoint: it reports
  prompt_eval_count and eval_count on every answer, streamed or not, so billing needs no local counting.
- The base URL defaults to http://localhost:11434. Ollama has no auth of its own; the channel's key is
  sent as a Bearer token for reverse proxies that check one, and ignored by Ollama itself.
- `stream` is always sent: Ollama streams unless told otherwise.
- Sampling fields move into `options` (max_tokens -> num_predict); response_format json_object becomes
  `format: "json"`, json_schema becomes the schema itself.
- Images must be base64 data URLs: `build_request` runs on the event loop and cannot download http URLs.
- Embeddings use `/api/embed` (Ollama 0.3 and later: many inputs per call, with a token count) and return
  one item per input; token-array inputs are refused, as Ollama embeds text only.
- The NDJSON stream ends with a `done: true` line; a stream that closes without it was cut short.
"""

import base64
import struct

import orjson

from channels_app.channel_types import new_api, one_api
from channels_app.routing import ChannelInfo
from relay.adaptors.base import (
    Adaptor,
    RelayRequest,
    StreamConverter,
    UpstreamFailed,
    UpstreamFailure,
    UpstreamRequest,
    Usage,
    load_json,
    names_in,
)
from relay.adaptors.openai_format import (
    ChunkWriter,
    assistant_message,
    client_tool_calls,
    completion_body,
    completion_text,
    content_parts,
    image_url_of,
    new_call_id,
    new_completion_id,
    openai_tool_call,
    parse_data_url,
    renamed_numeric_fields,
    reported_usage,
    request_json,
    require_endpoint,
    stop_sequences,
    stream_event,
    unsupported,
    usage_object,
)

SLUG = "ollama"
OPTION_FIELDS = {
    name: name for name in ("temperature", "top_p", "top_k", "seed", "frequency_penalty", "presence_penalty")
}


# --- requests ---


def native_message(message: dict) -> dict:
    """One OpenAI message as Ollama's: text joined into `content`, images as raw base64 beside it."""
    texts, images = [], []
    for part in content_parts(message.get("content")):
        kind = part.get("type")
        if kind == "text":
            texts.append(part.get("text") or "")
        elif kind == "image_url":
            data_url = parse_data_url(image_url_of(part))
            if data_url is None:
                raise unsupported("an http image URL (send the image as a base64 data URL)", SLUG)
            images.append(data_url.data)
        else:
            raise unsupported(f"content part {kind!r}", SLUG)
    role = message.get("role")
    out: dict = {"role": "system" if role == "developer" else role, "content": "\n".join(texts)}
    if images:
        out["images"] = images
    calls = client_tool_calls(message)  # Ollama wants arguments as an object, where OpenAI sends a JSON string
    if calls:
        out["tool_calls"] = [{"function": {"name": name, "arguments": arguments}} for _, name, arguments in calls]
    return out


def options_of(body: dict) -> dict:
    options = renamed_numeric_fields(body, OPTION_FIELDS)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        options["num_predict"] = max_tokens
    stops = stop_sequences(body.get("stop"))
    if stops:
        options["stop"] = stops
    return options


def output_format(response_format: object) -> object:
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":
        return "json"
    schema = (response_format.get("json_schema") or {}).get("schema")
    return schema if response_format.get("type") == "json_schema" and isinstance(schema, dict) else None


def chat_body(request: RelayRequest, model: str) -> dict:
    body = request.body
    out: dict = {
        "model": model,
        "messages": [native_message(message) for message in body["messages"]],
        "stream": request.stream,
    }
    options = options_of(body)
    if options:
        out["options"] = options
    if body.get("tools"):
        out["tools"] = body["tools"]  # the same function-tool shape as OpenAI's
    format_ = output_format(body.get("response_format"))
    if format_ is not None:
        out["format"] = format_
    return out


def embed_body(request: RelayRequest, model: str) -> dict:
    value = request.body["input"]
    if not isinstance(value, str) and not (isinstance(value, list) and all(isinstance(i, str) for i in value)):
        raise unsupported("token-array input", SLUG)
    out: dict = {"model": model, "input": value}
    if isinstance(request.body.get("dimensions"), int):
        out["dimensions"] = request.body["dimensions"]
    return out


# --- answers ---


def usage_of(body: dict) -> Usage:
    return Usage(int(body.get("prompt_eval_count") or 0), int(body.get("eval_count") or 0))


def finish_reason(done_reason: object, called_tools: bool) -> str:
    if done_reason == "length":
        return "length"
    return "tool_calls" if called_tools else "stop"


def tool_calls_of(message: dict) -> list[dict]:
    calls = [call.get("function") or {} for call in message.get("tool_calls") or () if isinstance(call, dict)]
    return [openai_tool_call(new_call_id(), call.get("name") or "", call.get("arguments")) for call in calls]


def float32_base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format: base64`: the vector as little-endian float32 bytes."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings_answer(request: RelayRequest, body: dict) -> tuple[bytes, Usage | None, str]:
    encode = request.body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": index, "embedding": float32_base64(vector) if encode else vector}
        for index, vector in enumerate(body.get("embeddings") or ())
    ]
    usage = Usage(int(body.get("prompt_eval_count") or 0), 0)
    shown = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
    answer = {"object": "list", "data": data, "model": request.model, "usage": shown}
    return orjson.dumps(answer), reported_usage(usage), ""


class OllamaAdaptor(Adaptor):
    slug = SLUG
    label = "Ollama"
    old_types = (new_api(4), one_api(30))
    default_base_url = "http://localhost:11434"

    def build_request(self, request: RelayRequest, channel: ChannelInfo) -> UpstreamRequest:
        require_endpoint(request, SLUG, "chat", "embeddings")
        model = channel.upstream_model(request.model)
        base = self.base_url(channel).removesuffix("/v1")
        if request.endpoint == "embeddings":
            url, body = f"{base}/api/embed", embed_body(request, model)
        else:
            url, body = f"{base}/api/chat", chat_body(request, model)
        headers = {"Content-Type": "application/json"}
        if channel.key:
            headers["Authorization"] = f"Bearer {channel.key}"
        return UpstreamRequest(url=url, headers=headers, content=request_json(body))

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest | None:
        headers = {"Authorization": f"Bearer {channel.key}"} if channel.key else {}
        return UpstreamRequest(f"{self.base_url(channel).removesuffix('/v1')}/api/tags", headers, b"", "GET")

    def model_names(self, content: bytes) -> list[str]:
        return names_in(content, "models", "name")

    def convert_response(self, request: RelayRequest, content: bytes) -> tuple[bytes, Usage | None, str]:
        body = load_json(content)
        if request.endpoint == "embeddings":
            return embeddings_answer(request, body)
        raw = body.get("message")
        if not isinstance(raw, dict):
            raw = {}
        calls = tool_calls_of(raw)
        message = assistant_message(raw.get("content") or "", calls, raw.get("thinking") or "")
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason(body.get("done_reason"), bool(calls)),
        }
        usage = usage_of(body)
        answer = completion_body(request, new_completion_id(), [choice], usage_object(usage))
        return answer, reported_usage(usage), completion_text(message)

    def stream_converter(self, request: RelayRequest) -> StreamConverter:
        return OllamaStream(request)


class OllamaStream(StreamConverter):
    """One NDJSON line per piece of the answer; the `done` line carries the reason and the counts."""

    def __init__(self, request: RelayRequest) -> None:
        super().__init__(request)
        self.writer = ChunkWriter(request, self.state)
        self.calls = 0
        self.done = False

    def feed(self, payload: bytes) -> list[bytes]:
        event = stream_event(payload, SLUG) or {}
        if event.get("error"):
            raise UpstreamFailed(UpstreamFailure(502, str(event["error"]), "upstream_error"))
        message = event.get("message")
        if not isinstance(message, dict):
            message = {}
        delta: dict = {}
        if message.get("content"):
            delta["content"] = message["content"]
        if message.get("thinking"):
            delta["reasoning_content"] = message["thinking"]
        calls = tool_calls_of(message)
        if calls:
            # Ollama sends each call whole; indices keep counting so clients never merge two calls.
            delta["tool_calls"] = [{"index": self.calls + n, **call} for n, call in enumerate(calls)]
            self.calls += len(calls)
        chunks = [self.writer.chunk(delta)] if delta else []
        if event.get("done"):
            self.done = True
            self.state.usage = reported_usage(usage_of(event))
            chunks.append(self.writer.chunk({}, finish_reason(event.get("done_reason"), self.calls > 0)))
        return chunks

    def finish(self) -> list[bytes]:
        if not self.done:
            raise UpstreamFailed(UpstreamFailure(502, "ollama stream ended before its done line", "upstream_error"))
        return []
