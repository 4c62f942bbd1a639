"""Prices: model ratio, completion ratio, fixed per-call price, group ratio, and every cost formula (tokens,
fixed price, images, speech) with the explanation the log row shows.

Model ratio 1 = $2 per million prompt tokens (1 token x ratio 1 = 1 quota at 500 000 quota per USD).
Operators' values in the PriceTable row override these defaults key by key.
"""

import math
import time
from dataclasses import dataclass, fields

from django.conf import settings
from django.core.cache import cache

from billing import audit
from billing.audit import Actor, System
from billing.models import AuditEntry, PriceTable
from gateway_project.db import run_db

VERSION_KEY = "prices:version"
VERSION_CHECK_SECONDS = 1.0  # how stale a price change may be in another process, beyond the version key
DEFAULT_MODEL_RATIO = 30.0  # unknown models: served, priced high on purpose (as one-api/new-api do)

# $ per 1M input tokens / 2 = ratio.
DEFAULT_MODEL_RATIO_TABLE: dict[str, float] = {
    "gpt-4o": 1.25,
    "gpt-4o-2024-11-20": 1.25,
    "gpt-4o-2024-08-06": 1.25,
    "gpt-4o-2024-05-13": 2.5,
    "chatgpt-4o-latest": 2.5,
    "gpt-4o-mini": 0.075,
    "gpt-4o-mini-2024-07-18": 0.075,
    "gpt-4.1": 1.0,
    "gpt-4.1-mini": 0.2,
    "gpt-4.1-nano": 0.05,
    "gpt-4-turbo": 5.0,
    "gpt-4": 15.0,
    "gpt-3.5-turbo": 0.25,
    "gpt-3.5-turbo-instruct": 0.75,
    "o1": 7.5,
    "o1-mini": 0.55,
    "o3": 1.0,
    "o3-mini": 0.55,
    "o4-mini": 0.55,
    "text-embedding-3-small": 0.01,
    "text-embedding-3-large": 0.065,
    "text-embedding-ada-002": 0.05,
    "omni-moderation-latest": 0.0,
    "text-moderation-latest": 0.0,
    "text-moderation-stable": 0.0,
    "whisper-1": 15.0,
    "tts-1": 7.5,
    "tts-1-hd": 15.0,
    "claude-3-5-sonnet-20241022": 1.5,
    "claude-3-5-sonnet-20240620": 1.5,
    "claude-3-5-sonnet-latest": 1.5,
    "claude-3-5-haiku-20241022": 0.4,
    "claude-3-5-haiku-latest": 0.4,
    "claude-3-7-sonnet-20250219": 1.5,
    "claude-3-opus-20240229": 7.5,
    "claude-3-sonnet-20240229": 1.5,
    "claude-3-haiku-20240307": 0.125,
    "claude-sonnet-4-20250514": 1.5,
    "claude-opus-4-20250514": 7.5,
    "gemini-1.5-pro": 0.625,
    "gemini-1.5-pro-latest": 0.625,
    "gemini-1.5-pro-001": 0.625,
    "gemini-1.5-pro-002": 0.625,
    "gemini-1.5-flash": 0.0375,
    "gemini-1.5-flash-latest": 0.0375,
    "gemini-1.5-flash-001": 0.0375,
    "gemini-1.5-flash-002": 0.0375,
    "gemini-2.0-flash": 0.05,
    "gemini-2.5-flash": 0.15,
    "gemini-2.5-pro": 0.625,
    "text-embedding-004": 0.0,
    # Llama on Vertex AI (model-as-a-service), under the names clients send with or without `meta/`:
    # 405B $5 in / $16 out per 1M tokens, 70B $0.72 / $0.72.
    "llama3-405b-instruct-maas": 2.5,
    "meta/llama3-405b-instruct-maas": 2.5,
    "llama-3.1-405b-instruct-maas": 2.5,
    "meta/llama-3.1-405b-instruct-maas": 2.5,
    "llama-3.1-70b-instruct-maas": 0.36,
    "meta/llama-3.1-70b-instruct-maas": 0.36,
    "llama-3.3-70b-instruct-maas": 0.36,
    "meta/llama-3.3-70b-instruct-maas": 0.36,
    # Zhipu and 01.AI list prices in CNY: ratio = CNY per 1K tokens x 500 / 7 (new-api's 7 CNY = $1).
    "glm-4": 7.1429,
    "glm-4-0520": 7.1429,
    "glm-4-alltools": 7.1429,
    "glm-4-plus": 3.5714,
    "glm-4-airx": 0.7143,
    "glm-4-air": 0.0714,
    "glm-4-long": 0.0714,
    "glm-4-flash": 0.0,
    "glm-3-turbo": 0.0714,
    "glm-4v": 3.5714,
    "glm-4v-plus": 0.7143,
    "embedding-2": 0.0357,
    "embedding-3": 0.0357,
    "yi-large": 1.4286,
    "yi-large-preview": 1.4286,
    "yi-large-rag": 1.7857,
    "yi-large-turbo": 0.8571,
    "yi-medium": 0.1786,
    "yi-medium-200k": 0.8571,
    "yi-spark": 0.0714,
    "yi-vision": 0.4286,
    "yi-lightning": 0.0707,
    "command-r": 0.075,
    "command-r-08-2024": 0.075,
    "command-r-plus": 1.25,
    "command-r-plus-08-2024": 1.25,
    "command-a-03-2025": 1.25,
    "command": 0.5,
    "command-light": 0.15,
    # Rerank is billed on the query and documents' tokens. Cohere charges $2 per 1000 searches; 0.5 makes
    # a typical 2000-token search cost the same.
    "rerank-english-v3.0": 0.5,
    "rerank-multilingual-v3.0": 0.5,
    "rerank-v3.5": 0.5,
    "rerank-english-v2.0": 0.5,
    "rerank-multilingual-v2.0": 0.5,
    "jina-reranker-v2-base-multilingual": 0.025,
    "jina-reranker-v1-base-en": 0.025,
    "jina-embeddings-v3": 0.025,
}

# Output price / input price.
DEFAULT_COMPLETION_RATIO_TABLE: dict[str, float] = {
    "gpt-4o": 4.0,
    "gpt-4o-2024-05-13": 3.0,
    "gpt-4o-mini": 4.0,
    "chatgpt-4o-latest": 3.0,
    "gpt-4.1": 4.0,
    "gpt-4-turbo": 3.0,
    "gpt-4": 2.0,
    "gpt-3.5-turbo": 3.0,
    "gpt-3.5-turbo-instruct": 4 / 3,
    "o1": 4.0,
    "o3": 4.0,
    "o4-mini": 4.0,
    "o1-mini": 4.0,
    "o3-mini": 4.0,
    "claude-3-5-haiku": 5.0,
    "claude-3": 5.0,
    "claude-sonnet-4": 5.0,
    "claude-opus-4": 5.0,
    "gemini-1.5": 4.0,
    "gemini-2.0": 4.0,
    "gemini-2.5-flash": 8.33,
    "gemini-2.5-pro": 8.0,
    "llama3-405b": 3.2,
    "meta/llama3-405b": 3.2,
    "llama-3.1-405b": 3.2,
    "meta/llama-3.1-405b": 3.2,
    "command-r": 4.0,
    "command-a": 4.0,
    "command": 2.0,
    "gpt-4-gizmo-*": 2.0,
    "gpt-4o-gizmo-*": 3.0,
}

# USD per call.
DEFAULT_MODEL_PRICE_TABLE: dict[str, float] = {
    "gpt-4-gizmo-*": 0.1,
    "gpt-4o-gizmo-*": 0.1,
    "dall-e-3": 0.04,
    "dall-e-2": 0.02,
    "gpt-image-1": 0.042,
    "mj_imagine": 0.1,
    "mj_variation": 0.1,
    "mj_reroll": 0.1,
    "mj_blend": 0.1,
    "mj_modal": 0.1,
    "mj_zoom": 0.1,
    "mj_shorten": 0.1,
    "mj_high_variation": 0.1,
    "mj_low_variation": 0.1,
    "mj_pan": 0.1,
    "mj_inpaint": 0.0,
    "mj_custom_zoom": 0.0,
    "mj_describe": 0.05,
    "mj_upscale": 0.05,
    "mj_upload": 0.05,
    "swap_face": 0.05,
    "suno_music": 0.1,
    "suno_lyrics": 0.01,
}

# Image price multipliers relative to the model's 1024x1024 standard price.
IMAGE_SIZE_MULTIPLIERS: dict[str, dict[str, float]] = {
    "dall-e-2": {"256x256": 0.8, "512x512": 0.9, "1024x1024": 1.0},
    "dall-e-3": {"1024x1024": 1.0, "1024x1792": 2.0, "1792x1024": 2.0},
    "gpt-image-1": {"1024x1024": 1.0, "1024x1536": 1.5, "1536x1024": 1.5, "auto": 1.5},
}
IMAGE_QUALITY_MULTIPLIERS: dict[str, dict[str, float]] = {
    "dall-e-3": {"standard": 1.0, "hd": 2.0},
    "gpt-image-1": {"low": 0.25, "medium": 1.0, "high": 4.0, "auto": 4.0, "standard": 1.0},
}
DEFAULT_IMAGE_PRICE = 0.04  # USD per 1024x1024 standard image for image models without a price


def image_multiplier(model: str, size: str, quality: str) -> float | None:
    """Size x quality multiplier; None when the model does not offer that size."""
    sizes = IMAGE_SIZE_MULTIPLIERS.get(model)
    if sizes is None:
        return 1.0  # unknown image model: price per image, whatever the size
    if size not in sizes:
        return None
    multiplier = sizes[size] * IMAGE_QUALITY_MULTIPLIERS.get(model, {}).get(quality, 1.0)
    if model == "dall-e-3" and quality == "hd" and size != "1024x1024":
        multiplier = 3.0  # hd at the large sizes costs $0.12, 3x the standard square
    return multiplier


def offers_image_size(model: str, size: str) -> bool:
    """Whether `model` is priced at `size` (an image model without a price per size takes any)."""
    return image_multiplier(model, size, "standard") is not None


DEFAULT_GROUP_RATIO: dict[str, float] = {"default": 1.0, "vip": 1.0, "svip": 1.0}


@dataclass(frozen=True)
class Prices:
    quota_per_unit: int
    model_ratio: dict[str, float]
    completion_ratio: dict[str, float]
    model_price: dict[str, float]
    group_ratio: dict[str, float]

    def as_dict(self) -> dict:
        return {
            "quota_per_unit": self.quota_per_unit,
            "model_ratio": self.model_ratio,
            "completion_ratio": self.completion_ratio,
            "model_price": self.model_price,
            "group_ratio": self.group_ratio,
        }

    def quote(self, model: str, group: str) -> "Quote":
        group_ratio = self.group_ratio.get(group, 1.0)
        price = lookup(self.model_price, model)
        if price is not None:
            return Quote(model, group_ratio, price=price, quota_per_unit=self.quota_per_unit)
        ratio = lookup(self.model_ratio, model)
        return Quote(
            model,
            group_ratio,
            model_ratio=DEFAULT_MODEL_RATIO if ratio is None else ratio,
            completion_ratio=lookup_prefix(self.completion_ratio, model) or 1.0,
            known=ratio is not None,
        )


def lookup(table: dict[str, float], model: str) -> float | None:
    """Exact name first, then the longest `prefix*` entry that matches."""
    if model in table:
        return table[model]
    best = None
    for name, value in table.items():
        if name.endswith("*") and model.startswith(name[:-1]) and (best is None or len(name) > len(best[0])):
            best = (name, value)
    return best[1] if best else None


def lookup_prefix(table: dict[str, float], model: str) -> float | None:
    """Completion ratios are per family: the longest entry that `model` starts with wins."""
    found = lookup(table, model)
    if found is not None:
        return found
    best = max((name for name in table if model.startswith(name.rstrip("*"))), key=len, default=None)
    return table[best] if best else None


@dataclass(frozen=True)
class Quote:
    """How one request is priced; `cost` is the formula of docs/architecture.md, "Money", rounded up."""

    model: str
    group_ratio: float
    model_ratio: float = 0.0
    completion_ratio: float = 1.0
    price: float | None = None
    quota_per_unit: int = 500_000
    known: bool = True

    def cost(self, prompt_tokens: int, completion_tokens: int) -> int:
        if self.price is not None:
            return math.ceil(round(self.price * self.quota_per_unit * self.group_ratio, 6))
        raw = (prompt_tokens + completion_tokens * self.completion_ratio) * self.model_ratio * self.group_ratio
        return math.ceil(round(raw, 6))

    def image_price(self) -> float:
        """USD per image: the model's fixed price, else the default image price."""
        return self.price if self.price is not None else DEFAULT_IMAGE_PRICE

    def image_cost(self, size: str, quality: str, count: int) -> tuple[int, str]:
        """(quota, the formula as the log shows it) for `count` images: per image price x size and quality
        multiplier, whatever the upstream reports."""
        multiplier = image_multiplier(self.model, size, quality) or 1.0
        per_image = self.image_price()
        quota = math.ceil(round(per_image * self.quota_per_unit * self.group_ratio * multiplier * count, 6))
        return quota, (
            f"per image ${per_image:g} x size/quality multiplier {multiplier:g} ({size}, {quality}) x n {count}"
            f" x {self.quota_per_unit} quota/$ x group ratio {self.group_ratio:g} = {quota}"
        )

    def speech_cost(self, characters: int) -> tuple[int, str]:
        """(quota, the formula as the log shows it) for text to speech: input characters x model ratio x group
        ratio (a character counts as a prompt token)."""
        quota = self.cost(characters, 0)
        return quota, (
            f"{characters} input characters x model ratio {self.model_ratio:g} x group ratio "
            f"{self.group_ratio:g} = {quota}"
        )

    def explain(self, prompt_tokens: int, completion_tokens: int) -> str:
        if self.price is not None:
            return (
                f"fixed price ${self.price:g} x {self.quota_per_unit} quota/$ x group ratio {self.group_ratio:g}"
                f" = {self.cost(prompt_tokens, completion_tokens)}"
            )
        unknown = " (model not in price table: default ratio)" if not self.known else ""
        return (
            f"model ratio {self.model_ratio:g}{unknown}, completion ratio {self.completion_ratio:g}, "
            f"group ratio {self.group_ratio:g}: ({prompt_tokens} + {completion_tokens} x {self.completion_ratio:g})"
            f" x {self.model_ratio:g} x {self.group_ratio:g} = {self.cost(prompt_tokens, completion_tokens)}"
        )


def defaults() -> dict:
    return {
        "quota_per_unit": 500_000,
        "model_ratio": dict(DEFAULT_MODEL_RATIO_TABLE),
        "completion_ratio": dict(DEFAULT_COMPLETION_RATIO_TABLE),
        "model_price": dict(DEFAULT_MODEL_PRICE_TABLE),
        "group_ratio": dict(DEFAULT_GROUP_RATIO),
    }


class _State:
    prices: Prices | None = None
    version: object = None
    loaded_at: float = 0.0
    checked_at: float = 0.0


def _load() -> Prices:
    """The operator's table when one was saved (it replaces the defaults whole), else the defaults."""
    row = PriceTable.objects.filter(pk=1).first()
    if row is None:
        return Prices(**defaults())
    return Prices(
        quota_per_unit=row.quota_per_unit,
        model_ratio=row.model_ratio,
        completion_ratio=row.completion_ratio,
        model_price=row.model_price,
        group_ratio=row.group_ratio,
    )


def _known_fresh(now: float) -> bool:
    """Loaded within SYNC_FREQUENCY and checked against the shared version within the last second."""
    return now - _State.checked_at < VERSION_CHECK_SECONDS and now - _State.loaded_at <= settings.SYNC_FREQUENCY


def current() -> Prices:
    now = time.monotonic()
    prices = _State.prices
    if prices is not None and _known_fresh(now):
        return prices
    _State.checked_at = now
    version = cache.get(VERSION_KEY)
    if prices is None or version != _State.version or now - _State.loaded_at > settings.SYNC_FREQUENCY:
        prices = _State.prices = _load()
        _State.version = version
        _State.loaded_at = now
    return prices


async def acurrent() -> Prices:
    """Prices without leaving the event loop while they were checked within the last second."""
    prices = _State.prices
    if prices is not None and _known_fresh(time.monotonic()):
        return prices
    return await run_db(current)


# What an audit entry records of the prices: every table, entry by entry.
AUDITED = audit.Subject(AuditEntry.Kind.PRICES, PriceTable, tuple(field.name for field in fields(Prices)))


def save(values: dict, merge: bool = False, actor: Actor = System.MANAGE_PY) -> Prices:
    """Store prices (keys of Prices.as_dict), with an audit entry; `merge` adds to each map instead of replacing
    it."""
    stored = current().as_dict()
    for name, value in values.items():
        stored[name] = {**stored[name], **value} if merge and isinstance(value, dict) else value
    with audit.tracked(actor, AUDITED, 1):
        PriceTable.objects.update_or_create(pk=1, defaults=stored)
    invalidate()
    return current()


def invalidate() -> None:
    _State.prices = None
    cache.set(VERSION_KEY, time.time_ns(), timeout=None)
