"""The OpenAI-compatible providers a channel can name by type: one table of presets, one adaptor class.

Each preset is the provider's default base URL, the models a new channel starts with, its one-api / new-api type
numbers, and the quirks of its OpenAI-compatible API, which `PresetAdaptor` applies:

- fields the API refuses (Mistral answers 422 to `stream_options`; it sends usage at a stream's end anyway),
  fields it names otherwise, and defaults it needs for answers that are not streamed (Qwen3 refuses thinking
  outside a stream unless told `enable_thinking: false`);
- reasoning text under another name (OpenRouter's and Groq's `reasoning`), relayed as `reasoning_content`:
  the name DeepSeek set and gateway clients read. Reasoning text is relayed to every client, as the providers
  do; it is the client that asked for it by choosing a reasoning model or turning thinking on;
- usage where OpenAI does not put it: in the last choice (Moonshot's streams), or completion tokens that leave
  the reasoning out (xAI: total = prompt + completion + reasoning). Answers are normalised to OpenAI's usage,
  where completion tokens include the reasoning, so both the client and billing read them as OpenAI's.

Cache reads need no quirk: relay.adaptors.openai_format.openai_usage reads each provider's dialect
(DeepSeek's `prompt_cache_hit_tokens`, Moonshot's top-level `cached_tokens`, the others' `cached_tokens`).
Provider documentation as of December 2025.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from channels_app.channel_types import OldType, both, new_api, one_api
from channels_app.routing import ChannelInfo
from relay.adaptors.base import RelayRequest, StreamConverter, UpstreamFailure, Usage, openai_style_error
from relay.adaptors.openai import OpenAIAdaptor, OpenAIStream

VERSIONED_ROOT = re.compile(r"/v\d+$")  # an API root that already names its version (/v1, Ark's /api/v3)


@dataclass(frozen=True)
class Preset:
    slug: str
    label: str
    base_url: str
    models: tuple[str, ...]
    old_types: tuple[OldType, ...] = ()
    refused_fields: tuple[str, ...] = ()
    renamed_fields: dict[str, str] = field(default_factory=dict)  # OpenAI's name -> the provider's
    whole_defaults: dict[str, object] = field(default_factory=dict)  # set on non-stream chat requests lacking them
    reasoning_field: str = ""  # the provider's name for reasoning text, relayed as `reasoning_content`
    reasoning_outside_completion: bool = False
    usage_in_choice: bool = False


PRESETS = (
    Preset(
        "deepseek",
        "DeepSeek",
        "https://api.deepseek.com",
        ("deepseek-chat", "deepseek-reasoner"),
        (one_api(36), new_api(43)),
    ),
    Preset(
        "moonshot",
        "Moonshot (Kimi)",
        "https://api.moonshot.cn/v1",
        (
            "kimi-k2-0905-preview",
            "kimi-k2-turbo-preview",
            "kimi-k2-thinking",
            "kimi-k2-thinking-turbo",
            "moonshot-v1-8k",
            "moonshot-v1-32k",
            "moonshot-v1-128k",
        ),
        (both(25),),
        usage_in_choice=True,
    ),
    Preset(
        "qwen",
        "Qwen (Alibaba DashScope)",
        "https://dashscope.aliyuncs.com/compatible-mode/v1",
        ("qwen3-max", "qwen-max", "qwen-plus", "qwen-turbo", "qwen-flash", "qwen3-coder-plus"),
        # The source's base URL is DashScope's host: its OpenAI-compatible API is under /compatible-mode/v1.
        (both(17, "", "/compatible-mode/v1"), one_api(49, "", "/compatible-mode/v1")),
        whole_defaults={"enable_thinking": False},
    ),
    Preset(
        "doubao",
        "Volcengine Ark (Doubao)",
        "https://ark.cn-beijing.volces.com/api/v3",
        (
            "doubao-seed-1-6-250615",
            "doubao-seed-1-6-thinking-250715",
            "doubao-seed-1-6-flash-250615",
            "doubao-1-5-pro-32k-250115",
        ),
        (one_api(40, "", "/api/v3"), new_api(45, "", "/api/v3")),
    ),
    Preset(
        "siliconflow",
        "SiliconFlow",
        "https://api.siliconflow.cn/v1",
        (
            "deepseek-ai/DeepSeek-V3",
            "deepseek-ai/DeepSeek-R1",
            "Qwen/Qwen3-32B",
            "Qwen/Qwen2.5-7B-Instruct",
            "moonshotai/Kimi-K2-Instruct-0905",
            "BAAI/bge-m3",
            "BAAI/bge-reranker-v2-m3",
        ),
        (one_api(44), new_api(40)),
    ),
    Preset(
        "openrouter",
        "OpenRouter",
        "https://openrouter.ai/api/v1",
        (
            "openai/gpt-5",
            "anthropic/claude-sonnet-4.5",
            "google/gemini-2.5-pro",
            "deepseek/deepseek-chat-v3.1",
            "x-ai/grok-4-fast",
        ),
        (both(20),),
        reasoning_field="reasoning",
    ),
    Preset(
        "xai",
        "xAI (Grok)",
        "https://api.x.ai/v1",
        ("grok-4", "grok-4-fast-reasoning", "grok-4-fast-non-reasoning", "grok-code-fast-1", "grok-3", "grok-3-mini"),
        (one_api(45), new_api(48)),
        reasoning_outside_completion=True,
    ),
    Preset(
        "mistral",
        "Mistral AI",
        "https://api.mistral.ai/v1",
        (
            "mistral-large-latest",
            "mistral-medium-latest",
            "mistral-small-latest",
            "magistral-medium-latest",
            "codestral-latest",
            "ministral-8b-latest",
            "mistral-embed",
        ),
        (one_api(28), new_api(42)),
        refused_fields=("stream_options",),
        renamed_fields={"max_completion_tokens": "max_tokens"},
    ),
    Preset(
        "groq",
        "Groq",
        "https://api.groq.com/openai/v1",
        (
            "llama-3.3-70b-versatile",
            "llama-3.1-8b-instant",
            "openai/gpt-oss-120b",
            "openai/gpt-oss-20b",
            "qwen/qwen3-32b",
            "moonshotai/kimi-k2-instruct-0905",
        ),
        (one_api(29),),
        reasoning_field="reasoning",
    ),
)


class PresetAdaptor(OpenAIAdaptor):
    """The OpenAI adaptor with a preset's host, models and quirks. `preset_adaptor` makes one class per preset,
    each declaring its own type (relay.adaptors.base.Provider)."""

    preset: Preset

    def url(self, request: RelayRequest, channel: ChannelInfo) -> str:
        base = self.base_url(channel)
        if VERSIONED_ROOT.search(base) and request.path.startswith("/v1/"):
            return base + request.path[3:]
        return base + request.path

    def fit_body(self, request: RelayRequest, upstream_model: str, changes: dict[str, object]) -> list[str]:
        preset = self.preset
        if request.endpoint == "chat" and not request.stream:
            changes.update({name: value for name, value in preset.whole_defaults.items() if name not in request.body})
        for name, renamed in preset.renamed_fields.items():
            if name in request.body and renamed not in request.body:
                changes[renamed] = request.body[name]
        refused = [*preset.refused_fields, *preset.renamed_fields]
        return [name for name in refused if name in request.body or name in changes]

    def convert_response(self, request: RelayRequest, content: bytes) -> tuple[bytes, Usage | None, str]:
        if not request.passthrough and request.endpoint != "rerank":
            content = normalised(content, self.preset, "message")
        return super().convert_response(request, content)

    def stream_converter(self, request: RelayRequest) -> StreamConverter:
        return PresetStream(request, self.preset, self.finish_reasons, self.parse_error)


class PresetStream(OpenAIStream):
    def __init__(
        self,
        request: RelayRequest,
        preset: Preset,
        finish_reasons: dict[str, str] | None = None,
        parse_error: Callable[[int, bytes], UpstreamFailure] = openai_style_error,
    ) -> None:
        super().__init__(request, finish_reasons, parse_error)
        self.preset = preset

    def feed(self, payload: bytes) -> list[bytes]:
        return super().feed(normalised(payload, self.preset, "delta"))


def normalised(content: bytes, preset: Preset, key: str) -> bytes:
    """An answer (`key` "message") or chunk ("delta") with the preset's reasoning and usage where OpenAI's
    are; the same bytes when the preset has no such quirk or nothing changed."""
    if not (preset.reasoning_field or preset.reasoning_outside_completion or preset.usage_in_choice):
        return content
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content  # the OpenAI adaptor reports it
    if not isinstance(answer, dict):
        return content
    changed = False
    for choice in answer.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if preset.reasoning_field:
            changed = renamed_reasoning(choice.get(key), preset.reasoning_field) or changed
        if preset.usage_in_choice and isinstance(choice.get("usage"), dict) and not answer.get("usage"):
            answer["usage"] = choice.pop("usage")
            changed = True
    if preset.reasoning_outside_completion:
        changed = reasoning_in_completion(answer.get("usage")) or changed
    return orjson.dumps(answer) if changed else content


def renamed_reasoning(part: object, name: str) -> bool:
    if not isinstance(part, dict) or not isinstance(part.get(name), str) or "reasoning_content" in part:
        return False
    part["reasoning_content"] = part.pop(name)
    return True


def reasoning_in_completion(usage: object) -> bool:
    details = usage.get("completion_tokens_details") if isinstance(usage, dict) else None
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    if not isinstance(usage, dict) or not isinstance(reasoning, int) or reasoning <= 0:
        return False
    usage["completion_tokens"] = int(usage.get("completion_tokens") or 0) + reasoning
    return True


def preset_adaptor(preset: Preset) -> PresetAdaptor:
    declared = {
        "slug": preset.slug,
        "label": preset.label,
        "old_types": preset.old_types,
        "default_base_url": preset.base_url,
        "default_models": preset.models,
        "preset": preset,
    }
    return type(f"{preset.slug.title()}Adaptor", (PresetAdaptor,), declared)()


PRESET_ADAPTORS = {preset.slug: preset_adaptor(preset) for preset in PRESETS}
