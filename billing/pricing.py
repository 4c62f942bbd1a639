"""Prices: model ratio, completion ratio, the cache lanes' ratios, fixed per-call price, group ratio, and every
cost formula (tokens, fixed price, images, speech) with the explanation the log row shows.

Model ratio 1 = $2 per million prompt tokens (1 token x ratio 1 = 1 quota at 500 000 quota per USD).
Operators' values in the PriceTable row override these defaults key by key.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

from django.conf import settings

from billing import audit
from billing.audit import Actor, System
from billing.models import AuditEntry, PriceTable
from gateway_project.snapshot import Snapshot

VERSION_KEY = "prices:version"
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
    # Current models, as published on the providers' pricing pages in December 2025 (USD per 1M tokens,
    # input / output; the first tier where the price depends on the prompt's length).
    # OpenAI (openai.com/api/pricing): GPT-5 and 5.1 $1.25 / $10, mini $0.25 / $2, nano $0.05 / $0.40,
    # GPT-5.2 $1.75 / $14, GPT-5 pro $15 / $120, o3-pro $20 / $80.
    "gpt-5": 0.625,
    "gpt-5-2025-08-07": 0.625,
    "gpt-5-chat-latest": 0.625,
    "gpt-5-codex": 0.625,
    "gpt-5-mini": 0.125,
    "gpt-5-mini-2025-08-07": 0.125,
    "gpt-5-nano": 0.025,
    "gpt-5-nano-2025-08-07": 0.025,
    "gpt-5-pro": 7.5,
    "gpt-5.1": 0.625,
    "gpt-5.1-2025-11-13": 0.625,
    "gpt-5.1-chat-latest": 0.625,
    "gpt-5.1-codex": 0.625,
    "gpt-5.1-codex-mini": 0.125,
    "gpt-5.2": 0.875,
    "gpt-4.1-2025-04-14": 1.0,
    "gpt-4.1-mini-2025-04-14": 0.2,
    "gpt-4.1-nano-2025-04-14": 0.05,
    "o3-2025-04-16": 1.0,
    "o3-pro": 10.0,
    "o4-mini-2025-04-16": 0.55,
    # Anthropic (claude.com/pricing): Opus 4.5 $5 / $25, Opus 4.1 $15 / $75, Sonnet 4.5 $3 / $15,
    # Haiku 4.5 $1 / $5.
    "claude-opus-4-5": 2.5,
    "claude-opus-4-5-20251101": 2.5,
    "claude-opus-4-1": 7.5,
    "claude-opus-4-1-20250805": 7.5,
    "claude-opus-4-0": 7.5,
    "claude-sonnet-4-5": 1.5,
    "claude-sonnet-4-5-20250929": 1.5,
    "claude-sonnet-4-0": 1.5,
    "claude-haiku-4-5": 0.5,
    "claude-haiku-4-5-20251001": 0.5,
    "claude-3-7-sonnet-latest": 1.5,
    # Google (ai.google.dev/gemini-api/docs/pricing): 2.5 Flash-Lite $0.10 / $0.40, 2.0 Flash-Lite
    # $0.075 / $0.30, 3 Pro preview $2 / $12, 3 Flash preview $0.50 / $3.
    "gemini-2.5-flash-lite": 0.05,
    "gemini-2.0-flash-lite": 0.0375,
    "gemini-3-pro-preview": 1.0,
    "gemini-3-flash-preview": 0.25,
    # DeepSeek V3.2 (api-docs.deepseek.com/quick_start/pricing): $0.28 (cache miss) / $0.42, both names.
    "deepseek-chat": 0.14,
    "deepseek-reasoner": 0.14,
    # Qwen (Alibaba Cloud Model Studio, international): qwen3-max $1.2 / $6, qwen-max $1.6 / $6.4, qwen-plus
    # $0.4 / $1.2, qwen-turbo $0.05 / $0.2, qwen-flash $0.05 / $0.4, qwen3-coder-plus $1 / $5.
    "qwen3-max": 0.6,
    "qwen-max": 0.8,
    "qwen-plus": 0.2,
    "qwen-turbo": 0.025,
    "qwen-flash": 0.025,
    "qwen3-coder-plus": 0.5,
    # GLM (Z.ai, in USD): GLM-4.6 and 4.5 $0.6 / $2.2, GLM-4.5-Air $0.2 / $1.1.
    "glm-4.6": 0.3,
    "glm-4.5": 0.3,
    "glm-4.5-air": 0.1,
    # Kimi (Moonshot AI): K2 and K2 Thinking $0.60 / $2.50.
    "kimi-k2-0905-preview": 0.3,
    "kimi-k2-0711-preview": 0.3,
    "kimi-k2-thinking": 0.3,
    # Doubao (Volcengine, in CNY per 1M tokens, ratio = CNY / 7 / 2): Seed 1.6 and its thinking model 0.8 / 8,
    # Seed 1.6 Flash 0.15 / 1.5, 1.5 Pro 32k 0.8 / 2.
    "doubao-seed-1-6-250615": 0.0571,
    "doubao-seed-1-6-thinking-250715": 0.0571,
    "doubao-seed-1-6-flash-250615": 0.0107,
    "doubao-1-5-pro-32k-250115": 0.0571,
    # Grok (xAI): Grok 4 $3 / $15, Grok 4 Fast $0.20 / $0.50, Grok Code Fast 1 $0.20 / $1.50, Grok 3 $3 / $15,
    # Grok 3 Mini $0.30 / $0.50.
    "grok-4": 1.5,
    "grok-4-0709": 1.5,
    "grok-4-fast-reasoning": 0.1,
    "grok-4-fast-non-reasoning": 0.1,
    "grok-code-fast-1": 0.1,
    "grok-3": 1.5,
    "grok-3-mini": 0.15,
    # Mistral (mistral.ai/pricing): Large 2.1 $2 / $6, Medium 3 $0.4 / $2, Small 3.2 $0.1 / $0.3.
    "mistral-large-latest": 1.0,
    "mistral-large-2411": 1.0,
    "mistral-medium-latest": 0.2,
    "mistral-medium-2508": 0.2,
    "mistral-small-latest": 0.05,
    "mistral-small-2506": 0.05,
    # The provider presets' other default models (relay.adaptors.presets), from the providers' price pages in
    # December 2025 (USD per 1M tokens, input on a cache miss / output). Kimi (platform.moonshot.ai/docs/pricing):
    # K2 Turbo and K2 Thinking Turbo $1.15 / $8, Moonshot v1 8k $0.20 / $2, 32k $1 / $3, 128k $2 / $5.
    "kimi-k2-turbo-preview": 0.575,
    "kimi-k2-thinking-turbo": 0.575,
    "moonshot-v1-8k": 0.1,
    "moonshot-v1-32k": 0.5,
    "moonshot-v1-128k": 1.0,
    # Mistral: Magistral Medium $2 / $5, Codestral $0.3 / $0.9, Ministral 8B $0.1 / $0.1, Embed $0.1.
    "magistral-medium-latest": 1.0,
    "codestral-latest": 0.15,
    "ministral-8b-latest": 0.05,
    "mistral-embed": 0.05,
    # Groq (groq.com/pricing): Llama 3.3 70B $0.59 / $0.79, Llama 3.1 8B $0.05 / $0.08, GPT-OSS 120B
    # $0.15 / $0.60, GPT-OSS 20B $0.075 / $0.30, Qwen3 32B $0.29 / $0.59, Kimi K2 0905 $1 / $3.
    "llama-3.3-70b-versatile": 0.295,
    "llama-3.1-8b-instant": 0.025,
    "openai/gpt-oss-120b": 0.075,
    "openai/gpt-oss-20b": 0.0375,
    "qwen/qwen3-32b": 0.145,
    "moonshotai/kimi-k2-instruct-0905": 0.5,
    # SiliconFlow (siliconflow.cn/pricing, CNY, ratio = CNY / 7 / 2): DeepSeek-V3 2 / 8, DeepSeek-R1 4 / 16,
    # Qwen3-32B 1 / 4, Kimi-K2-Instruct-0905 4 / 16; Qwen2.5-7B-Instruct, bge-m3 and bge-reranker-v2-m3 free.
    "deepseek-ai/DeepSeek-V3": 0.1429,
    "deepseek-ai/DeepSeek-R1": 0.2857,
    "Qwen/Qwen3-32B": 0.0714,
    "moonshotai/Kimi-K2-Instruct-0905": 0.2857,
    "Qwen/Qwen2.5-7B-Instruct": 0.0,
    "BAAI/bge-m3": 0.0,
    "BAAI/bge-reranker-v2-m3": 0.0,
    # OpenRouter (openrouter.ai/models) passes the providers' prices on: GPT-5 $1.25 / $10, Claude Sonnet 4.5
    # $3 / $15, Gemini 2.5 Pro $1.25 / $10, DeepSeek V3.1 $0.20 / $0.80, Grok 4 Fast $0.20 / $0.50.
    "openai/gpt-5": 0.625,
    "anthropic/claude-sonnet-4.5": 1.5,
    "google/gemini-2.5-pro": 0.625,
    "deepseek/deepseek-chat-v3.1": 0.1,
    "x-ai/grok-4-fast": 0.1,
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
    # The current models above (output / input as published in December 2025).
    "gpt-5": 8.0,
    "claude-haiku-4": 5.0,
    "gemini-2.5-flash-lite": 4.0,
    "gemini-3": 6.0,
    "deepseek-chat": 1.5,
    "deepseek-reasoner": 1.5,
    "qwen3-max": 5.0,
    "qwen-max": 4.0,
    "qwen-plus": 3.0,
    "qwen-turbo": 4.0,
    "qwen-flash": 8.0,
    "qwen3-coder-plus": 5.0,
    "glm-4.6": 2.2 / 0.6,
    "glm-4.5": 2.2 / 0.6,
    "glm-4.5-air": 5.5,
    "kimi-k2": 2.5 / 0.6,
    "doubao-seed-1-6": 10.0,
    "doubao-1-5-pro": 2.5,
    "grok-4": 5.0,
    "grok-4-fast": 2.5,
    "grok-code-fast": 7.5,
    "grok-3": 5.0,
    "grok-3-mini": 0.5 / 0.3,
    "mistral-large": 3.0,
    "mistral-medium": 5.0,
    "mistral-small": 3.0,
    # The provider presets' other default models, from the prices above.
    "kimi-k2-turbo": 8 / 1.15,
    "kimi-k2-thinking-turbo": 8 / 1.15,
    "moonshot-v1-8k": 10.0,
    "moonshot-v1-32k": 3.0,
    "moonshot-v1-128k": 2.5,
    "magistral-medium": 2.5,
    "codestral": 3.0,
    "llama-3.3-70b-versatile": 0.79 / 0.59,
    "llama-3.1-8b-instant": 1.6,
    "openai/gpt-oss": 4.0,
    "qwen/qwen3-32b": 0.59 / 0.29,
    "moonshotai/kimi-k2-instruct": 3.0,
    "deepseek-ai/DeepSeek": 4.0,
    "Qwen/Qwen3-32B": 4.0,
    "moonshotai/Kimi-K2-Instruct": 4.0,
    "openai/gpt-5": 8.0,
    "anthropic/claude-sonnet-4.5": 5.0,
    "google/gemini-2.5-pro": 8.0,
    "deepseek/deepseek-chat-v3.1": 4.0,
    "x-ai/grok-4-fast": 2.5,
    "gpt-4-gizmo-*": 2.0,
    "gpt-4o-gizmo-*": 3.0,
}

# The cache lanes, relative to the model's input price (new-api's names: CacheRatio, CreateCacheRatio; the
# 1-hour write has no new-api option). Looked up like the model ratio: the exact name, else the longest
# `prefix*` entry. A model with no entry bills its cache reads and writes at the input price (ratio 1), never
# free by accident. As published in December 2025 on the pricing pages named above.
DEFAULT_CACHE_RATIO_TABLE: dict[str, float] = {
    # Anthropic: a cache read costs 0.1x the input price, every Claude model.
    "claude-*": 0.1,
    # OpenAI: cached input 0.5x for GPT-4o, o1 and o3-mini, 0.25x for GPT-4.1, o3 and o4-mini, 0.1x for GPT-5.
    "gpt-4o": 0.5,
    "gpt-4o-2024-11-20": 0.5,
    "gpt-4o-2024-08-06": 0.5,
    "gpt-4o-mini": 0.5,
    "gpt-4o-mini-2024-07-18": 0.5,
    "o1": 0.5,
    "o1-mini": 0.5,
    "o3-mini": 0.5,
    "gpt-4.1": 0.25,
    "gpt-4.1-2025-04-14": 0.25,
    "gpt-4.1-mini": 0.25,
    "gpt-4.1-mini-2025-04-14": 0.25,
    "gpt-4.1-nano": 0.25,
    "gpt-4.1-nano-2025-04-14": 0.25,
    "o3": 0.25,
    "o3-2025-04-16": 0.25,
    "o4-mini": 0.25,
    "o4-mini-2025-04-16": 0.25,
    "gpt-5": 0.1,
    "gpt-5-2025-08-07": 0.1,
    "gpt-5-chat-latest": 0.1,
    "gpt-5-codex": 0.1,
    "gpt-5-mini": 0.1,
    "gpt-5-mini-2025-08-07": 0.1,
    "gpt-5-nano": 0.1,
    "gpt-5-nano-2025-08-07": 0.1,
    "gpt-5.1": 0.1,
    "gpt-5.1-2025-11-13": 0.1,
    "gpt-5.1-chat-latest": 0.1,
    "gpt-5.1-codex": 0.1,
    "gpt-5.1-codex-mini": 0.1,
    "gpt-5.2": 0.1,
    # Google: cached tokens 0.25x the input price for Gemini 2.0 and 2.5, 0.1x for Gemini 3.
    "gemini-2.0-flash": 0.25,
    "gemini-2.0-flash-lite": 0.25,
    "gemini-2.5-pro": 0.25,
    "gemini-2.5-flash": 0.25,
    "gemini-2.5-flash-lite": 0.25,
    "gemini-3-pro-preview": 0.1,
    "gemini-3-flash-preview": 0.1,
    # DeepSeek V3.2: a cache hit costs $0.028 against $0.28 for a miss.
    "deepseek-chat": 0.1,
    "deepseek-reasoner": 0.1,
    # The provider presets (relay.adaptors.presets). Kimi: a cache hit costs $0.15 (K2 $0.60, Turbo $1.15).
    "kimi-k2-0905-preview": 0.25,
    "kimi-k2-0711-preview": 0.25,
    "kimi-k2-thinking": 0.25,
    "kimi-k2-turbo-preview": 0.15 / 1.15,
    "kimi-k2-thinking-turbo": 0.15 / 1.15,
    # Qwen (Model Studio): implicit cache hits cost 20 % of the input price; Doubao: 0.16 against 0.8 CNY.
    "qwen3-max": 0.2,
    "qwen-max": 0.2,
    "qwen-plus": 0.2,
    "qwen-turbo": 0.2,
    "qwen-flash": 0.2,
    "qwen3-coder-plus": 0.2,
    "doubao-seed-1-6-*": 0.2,
    "doubao-1-5-pro-32k-250115": 0.2,
    # xAI: cached input $0.75 for Grok 4 and 3, $0.05 for Grok 4 Fast, $0.075 for Grok 3 Mini, $0.02 for Grok
    # Code Fast 1.
    "grok-4": 0.25,
    "grok-4-0709": 0.25,
    "grok-4-fast-*": 0.25,
    "grok-3": 0.25,
    "grok-3-mini": 0.25,
    "grok-code-fast-1": 0.1,
    # Groq: cached input half the price for GPT-OSS and Kimi K2.
    "openai/gpt-oss-*": 0.5,
    "moonshotai/kimi-k2-instruct-0905": 0.5,
    # OpenRouter: the providers' own cache prices.
    "openai/gpt-5": 0.1,
    "anthropic/claude-sonnet-4.5": 0.1,
    "google/gemini-2.5-pro": 0.25,
}

# Anthropic: writing the cache costs 1.25x the input price for 5 minutes, 2x for 1 hour. The others do not
# bill cache writes apart (their usage reports none).
DEFAULT_CREATE_CACHE_RATIO_TABLE: dict[str, float] = {"claude-*": 1.25}
DEFAULT_CREATE_CACHE_RATIO_1H_TABLE: dict[str, float] = {"claude-*": 2.0}

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
    cache_ratio: dict[str, float]
    create_cache_ratio: dict[str, float]
    create_cache_ratio_1h: dict[str, float]
    group_affinity: dict[str, list[str]]

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in PRICE_FIELDS}

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
            cache=CacheRatios(
                read=_ratio_or_input_price(self.cache_ratio, model),
                write_5m=_ratio_or_input_price(self.create_cache_ratio, model),
                write_1h=_ratio_or_input_price(self.create_cache_ratio_1h, model),
            ),
        )

    def affinity_sources(self, group: str) -> Sequence[str]:
        """Where a request of `group` may name its conversation, for channel affinity (channels_app.affinity):
        the group's own list when it has one, else AFFINITY_SOURCES."""
        return self.group_affinity.get(group, settings.AFFINITY_SOURCES)


PRICE_FIELDS = tuple(field.name for field in fields(Prices))


def _ratio_or_input_price(table: dict[str, float], model: str) -> float:
    """A cache lane's ratio; 1 (the input price) when the model has none."""
    found = lookup(table, model)
    return 1.0 if found is None else found


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
class CacheRatios:
    """What a cached input token costs relative to an uncached one: read, 5-minute write, 1-hour write."""

    read: float = 1.0
    write_5m: float = 1.0
    write_1h: float = 1.0


@dataclass(frozen=True)
class Lanes:
    """How a request's prompt tokens (all its input) split between the cache lanes; the rest is uncached."""

    prompt: int
    read: int = 0
    write_5m: int = 0
    write_1h: int = 0

    @property
    def uncached(self) -> int:
        # A usage that reports more cached tokens than prompt tokens bills no negative uncached part.
        return max(0, self.prompt - self.read - self.write_5m - self.write_1h)

    @property
    def any_cached(self) -> bool:
        return bool(self.read or self.write_5m or self.write_1h)


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
    cache: CacheRatios = CacheRatios()

    def cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cache_read: int = 0,
        cache_write_5m: int = 0,
        cache_write_1h: int = 0,
    ) -> int:
        """`prompt_tokens` is all the input, the cache lanes included (OpenAI's convention)."""
        return self._cost(Lanes(prompt_tokens, cache_read, cache_write_5m, cache_write_1h), completion_tokens)

    def _cost(self, lanes: Lanes, completion_tokens: int) -> int:
        if self.price is not None:
            return math.ceil(round(self.price * self.quota_per_unit * self.group_ratio, 6))
        return self._token_cost(self._input_units(lanes), completion_tokens)

    def hold(self, prompt_tokens: int, completion_tokens: int) -> int:
        """The most a request of this size can cost, to reserve before the upstream says how the prompt was
        cached: no cache hit is assumed, and every prompt token is priced at the dearest input lane (a cache
        write can cost more than an uncached token)."""
        if self.price is not None:
            return self._cost(Lanes(prompt_tokens), completion_tokens)
        dearest = max(1.0, self.cache.read, self.cache.write_5m, self.cache.write_1h)
        return self._token_cost(prompt_tokens * dearest, completion_tokens)

    def _input_units(self, lanes: Lanes) -> float:
        """The prompt in uncached-token units: each lane weighted by its ratio."""
        cache = self.cache
        return (
            lanes.uncached + lanes.read * cache.read + lanes.write_5m * cache.write_5m + lanes.write_1h * cache.write_1h
        )

    def _token_cost(self, input_units: float, completion_tokens: int) -> int:
        raw = (input_units + completion_tokens * self.completion_ratio) * self.model_ratio * self.group_ratio
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

    def explain(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cache_read: int = 0,
        cache_write_5m: int = 0,
        cache_write_1h: int = 0,
    ) -> str:
        lanes = Lanes(prompt_tokens, cache_read, cache_write_5m, cache_write_1h)
        cost = self._cost(lanes, completion_tokens)
        if self.price is not None:
            return (
                f"fixed price ${self.price:g} x {self.quota_per_unit} quota/$ x group ratio {self.group_ratio:g}"
                f" = {cost}"
            )
        unknown = " (model not in price table: default ratio)" if not self.known else ""
        ratios, prompt = self._explain_prompt(lanes)
        return (
            f"model ratio {self.model_ratio:g}{unknown}, completion ratio {self.completion_ratio:g}{ratios}, "
            f"group ratio {self.group_ratio:g}: ({prompt} + {completion_tokens} x {self.completion_ratio:g})"
            f" x {self.model_ratio:g} x {self.group_ratio:g} = {cost}"
        )

    def _explain_prompt(self, lanes: Lanes) -> tuple[str, str]:
        """The cache ratios and the prompt's terms as the formula shows them: the bare prompt when nothing was
        cached (the formula of a request without caching), else each non-zero lane with its ratio."""
        if not lanes.any_cached:
            return "", str(lanes.prompt)
        named = (
            ("cache read", lanes.read, self.cache.read),
            ("cache write 5m", lanes.write_5m, self.cache.write_5m),
            ("cache write 1h", lanes.write_1h, self.cache.write_1h),
        )
        used = [(name, tokens, ratio) for name, tokens, ratio in named if tokens]
        ratios = "".join(f", {name} ratio {ratio:g}" for name, _, ratio in used)
        terms = "".join(f" + {tokens} {name} x {ratio:g}" for name, tokens, ratio in used)
        return ratios, f"{lanes.uncached} uncached{terms}"


def defaults() -> dict:
    return {
        "quota_per_unit": 500_000,
        "model_ratio": dict(DEFAULT_MODEL_RATIO_TABLE),
        "completion_ratio": dict(DEFAULT_COMPLETION_RATIO_TABLE),
        "model_price": dict(DEFAULT_MODEL_PRICE_TABLE),
        "group_ratio": dict(DEFAULT_GROUP_RATIO),
        "cache_ratio": dict(DEFAULT_CACHE_RATIO_TABLE),
        "create_cache_ratio": dict(DEFAULT_CREATE_CACHE_RATIO_TABLE),
        "create_cache_ratio_1h": dict(DEFAULT_CREATE_CACHE_RATIO_1H_TABLE),
        "group_affinity": {},
    }


def _load() -> Prices:
    """The operator's table when one was saved (it replaces the defaults whole), else the defaults."""
    row = PriceTable.objects.filter(pk=1).first()
    if row is None:
        return Prices(**defaults())
    return Prices(**{name: getattr(row, name) for name in PRICE_FIELDS})


# How stale a price change may be in another process: the version key is checked once a second, and the
# prices are reloaded at least every SYNC_FREQUENCY.
PRICES = Snapshot(_load, version_key=VERSION_KEY)


def current() -> Prices:
    return PRICES.get()


async def acurrent() -> Prices:
    """Prices without leaving the event loop while they were checked within the last second."""
    return await PRICES.aget()


# What an audit entry records of the prices: every table, entry by entry.
AUDITED = audit.Subject(AuditEntry.Kind.PRICES, PriceTable, PRICE_FIELDS)


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
    PRICES.invalidate()
