"""OpenAI and every OpenAI-compatible upstream: the body passes through, re-serialised only when changed.

The Responses API (`/v1/responses` and the calls on a stored response) is passed through as the client sent
it (relay.adaptors.responses_native).

Rerank (`/v1/rerank`) speaks Jina's format, which OpenAI-compatible rerank backends (Jina, Xinference,
SiliconFlow, TEI proxies) share: sent with an explicit `return_documents`, answered in the gateway's shape.
"""

from collections.abc import Callable

import orjson
from django.conf import settings

from channels_app.channel_types import OldType, both, new_api, one_api
from channels_app.routing import ChannelInfo
from relay.adaptors import responses_native
from relay.adaptors.base import (
    OPENAI_RESPONSES,
    OPENAI_STORED_RESPONSE,
    Adaptor,
    RelayRequest,
    StreamConverter,
    UpstreamFailed,
    UpstreamFailure,
    UpstreamRequest,
    Usage,
    load_json,
    openai_style_error,
)
from relay.adaptors.openai_format import openai_usage, request_json, rerank_answer, rerank_body

# OpenAI's reasoning models refuse `max_tokens` (they take `max_completion_tokens`); its older chat models
# refuse `reasoning_effort`. Clients of other formats (a Messages request converted to chat) cannot know which
# model a channel maps theirs to, so the body is fitted to the upstream model here.
REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")
MODELS_WITHOUT_REASONING = ("gpt-4", "gpt-3.5", "chatgpt-4o")


def reasoning_fields(body: dict, upstream_model: str, changes: dict[str, object]) -> list[str]:
    """Add to `changes` what the upstream model needs instead; the names of the fields it refuses."""
    if upstream_model.startswith(REASONING_MODELS) and "max_tokens" in body:
        if "max_completion_tokens" not in body:
            changes["max_completion_tokens"] = body["max_tokens"]
        return ["max_tokens"]
    if upstream_model.startswith(MODELS_WITHOUT_REASONING) and "reasoning_effort" in body:
        return ["reasoning_effort"]
    return []


class OpenAIAdaptor(Adaptor):
    slug = "openai"
    label = "OpenAI-compatible"
    old_types: tuple[OldType, ...] = (
        both(1),
        both(6, "https://api.openaimax.com"),
        both(7, "https://api.ohmygpt.com"),
        both(9, "https://api.caipacity.com"),
        both(10, "https://api.aiproxy.io"),
        both(12, "https://api.api2gpt.com"),
        both(13, "https://api.aigc2d.com"),
        both(19, "https://ai.360.cn"),
        both(22, "https://fastgpt.run/api/openapi"),
        one_api(2, "https://oa.api2d.net"),
        one_api(4, "https://api.closeai-proxy.xyz"),
        one_api(5, "https://api.openai-sb.com"),
        one_api(8),  # one-api: base_url + the request path, i.e. an OpenAI-compatible base
        one_api(26, "https://api.baichuan-ai.com"),
        one_api(32, "https://api.stepfun.com"),
        one_api(39, "https://api.together.xyz"),
        one_api(50),
        new_api(27, "https://api.perplexity.ai"),
    )
    default_base_url = "https://api.openai.com"
    finish_reasons: dict[str, str] = {}  # a compatible provider's own finish reasons -> OpenAI's

    def build_request(self, request: RelayRequest, channel: ChannelInfo) -> UpstreamRequest:
        headers = {**self.headers(channel), "Content-Type": request.content_type}
        if request.endpoint == OPENAI_STORED_RESPONSE:
            return UpstreamRequest(self.responses_url(request, channel), headers, request.raw, request.method)
        if request.endpoint == OPENAI_RESPONSES:
            content = responses_native.native_body(request, self.responses_model(request, channel))
            return UpstreamRequest(self.responses_url(request, channel), headers, content)
        return UpstreamRequest(url=self.url(request, channel), headers=headers, content=self.body(request, channel))

    def responses_url(self, request: RelayRequest, channel: ChannelInfo) -> str:
        """Where the Responses API lives: `request.path` is the client's (`/v1/responses...`, with its query)."""
        return self.url(request, channel)

    def responses_model(self, request: RelayRequest, channel: ChannelInfo) -> str:
        return channel.upstream_model(request.model)

    def url(self, request: RelayRequest, channel: ChannelInfo) -> str:
        base = self.base_url(channel)
        path = request.path
        if base.endswith("/v1") and path.startswith("/v1/"):
            path = path[3:]
        return base + path

    def headers(self, channel: ChannelInfo) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {channel.key}"}
        organization = channel.config.get("organization")
        if organization:
            headers["OpenAI-Organization"] = organization
        return headers

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest | None:
        listing = RelayRequest("models", "", {}, b"", stream=False, wants_usage=False, path="/v1/models")
        return UpstreamRequest(self.url(listing, channel), self.headers(channel), b"", "GET")

    def body(self, request: RelayRequest, channel: ChannelInfo) -> bytes:
        if not request.content_type.startswith("application/json"):
            return request.raw  # multipart uploads go through byte for byte
        upstream_model = channel.upstream_model(request.model)
        if request.endpoint == "rerank":
            return request_json(rerank_body(request, upstream_model))
        changes: dict[str, object] = {}
        if upstream_model != request.model:
            changes["model"] = upstream_model
        if request.stream and settings.FORCE_STREAM_OPTION and not request.wants_usage:
            # Ask for usage so billing is exact; the usage chunk is kept from the client (see OpenAIStream).
            changes["stream_options"] = {**(request.body.get("stream_options") or {}), "include_usage": True}
        dropped = self.fit_body(request, upstream_model, changes)
        if not changes and not dropped:
            return request.raw
        body = {**request.body, **changes}
        for name in dropped:
            body.pop(name, None)
        return request_json(body)

    def fit_body(self, request: RelayRequest, upstream_model: str, changes: dict[str, object]) -> list[str]:
        """Add to `changes` what the upstream model needs; the names of the fields it refuses."""
        return reasoning_fields(request.body, upstream_model, changes)

    def convert_response(self, request: RelayRequest, content: bytes) -> tuple[bytes, Usage | None, str]:
        if request.endpoint == OPENAI_RESPONSES:
            return responses_native.native_answer(content)
        if request.passthrough:
            return content, None, content.decode("utf-8", "replace")
        body = load_json(content)
        if request.endpoint == "rerank":
            return rerank_answer(request, body.get("results"), rerank_tokens(body.get("usage")))
        text = "".join(choice_text(choice, "message") for choice in body.get("choices") or ())
        usage = openai_usage(body.get("usage"))
        changed = with_openai_cache_field(body.get("usage"), usage)
        changed = remap_finish_reasons(body.get("choices"), self.finish_reasons) or changed
        if body.get("model") not in (None, request.model):
            body["model"] = request.model  # clients see the model they asked for, not the mapped one
            changed = True
        return orjson.dumps(body) if changed else content, usage, text

    def stream_converter(self, request: RelayRequest) -> StreamConverter:
        if request.endpoint == OPENAI_RESPONSES:
            return responses_native.NativeStream(request)
        return OpenAIStream(request, self.finish_reasons, self.parse_error)


class OpenAIStream(StreamConverter):
    """Forwards chunks byte for byte unless the model was mapped, a usage chunk must be hidden or a finish
    reason renamed. An error event is read by the adaptor's `parse_error` (a provider's own codes)."""

    def __init__(
        self,
        request: RelayRequest,
        finish_reasons: dict[str, str] | None = None,
        parse_error: Callable[[int, bytes], UpstreamFailure] = openai_style_error,
    ) -> None:
        super().__init__(request)
        self.finish_reasons = finish_reasons or {}
        self.parse_error = parse_error

    def feed(self, payload: bytes) -> list[bytes]:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            failure = UpstreamFailure(502, "upstream sent invalid JSON in its stream", "upstream_error")
            raise UpstreamFailed(failure) from None
        if not isinstance(chunk, dict):
            return [payload]
        if chunk.get("error"):
            raise UpstreamFailed(self.parse_error(502, payload))
        self._remember(chunk)
        changed = remap_finish_reasons(chunk.get("choices"), self.finish_reasons)
        if chunk.get("usage") is not None:
            self.state.usage = openai_usage(chunk["usage"]) or self.state.usage
            if not self.request.wants_usage:
                if not chunk.get("choices"):
                    return []
                del chunk["usage"]
                changed = True
            else:
                self.state.usage_sent = True
                changed = with_openai_cache_field(chunk["usage"], self.state.usage) or changed
        if chunk.get("model") not in (None, self.request.model):
            chunk["model"] = self.request.model
            changed = True
        return [orjson.dumps(chunk) if changed else payload]

    def _remember(self, chunk: dict) -> None:
        self.state.chunk_id = chunk.get("id") or self.state.chunk_id
        self.state.created = chunk.get("created") or self.state.created
        for choice in chunk.get("choices") or ():
            self.state.text_parts.append(choice_text(choice, "delta"))
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            tool_calls = delta.get("tool_calls")
            if isinstance(tool_calls, list):
                self.state.max_tool_calls = max(self.state.max_tool_calls, len(tool_calls))
                for call in tool_calls:
                    function = call.get("function") or {} if isinstance(call, dict) else {}
                    self.state.text_parts.append((function.get("name") or "") + (function.get("arguments") or ""))


def with_openai_cache_field(reported: object, usage: Usage | None) -> bool:
    """Add OpenAI's `prompt_tokens_details.cached_tokens` to usage that reports a cache hit only in its own
    fields (DeepSeek's `prompt_cache_hit_tokens`), so clients read it where they look; True when added."""
    if not isinstance(reported, dict) or usage is None or not usage.cache_read_tokens:
        return False
    details = reported.get("prompt_tokens_details")
    if isinstance(details, dict) and details.get("cached_tokens"):
        return False
    kept = details if isinstance(details, dict) else {}
    reported["prompt_tokens_details"] = {**kept, "cached_tokens": usage.cache_read_tokens}
    return True


def choice_text(choice: object, key: str) -> str:
    """The text of one choice the provider bills as output: chat's message/delta content and its reasoning
    (`reasoning_content`), or legacy completions' `text`."""
    if not isinstance(choice, dict):
        return ""
    if isinstance(choice.get("text"), str):
        return choice["text"]
    part = choice.get(key)
    texts = [part.get(name) for name in ("reasoning_content", "content")] if isinstance(part, dict) else []
    return "".join(text for text in texts if isinstance(text, str))


def remap_finish_reasons(choices: object, names: dict[str, str]) -> bool:
    """Rename finish reasons in place; True when one changed."""
    changed = False
    for choice in choices if names and isinstance(choices, list) else ():
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        if isinstance(reason, str) and reason in names:
            choice["finish_reason"] = names[reason]
            changed = True
    return changed


def rerank_tokens(usage: object) -> int:
    """Jina-format usage may hold only `total_tokens`; rerank has no output tokens, so both mean input."""
    usage = usage if isinstance(usage, dict) else {}
    return int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
