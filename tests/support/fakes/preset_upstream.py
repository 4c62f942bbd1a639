"""Fakes of the OpenAI-compatible providers of relay.adaptors.presets, each in its own dialect: where it
puts reasoning text and cache hits, how its usage counts reasoning, what it refuses.

A fake serves its API root's path (the path of the preset's default base URL: `/compatible-mode/v1`,
`/api/v3`, ...), so a channel whose base URL is the fake's host plus that path proves the preset builds its
URLs as the provider wants them. Every answer reasons (REASONING) before it replies (REPLY) and reports a
cache hit of CACHED_TOKENS.
"""

from dataclasses import dataclass

from aiohttp import web

from tests.support.fakes.recording import Behaviour, RecordingFake, sse, stream_lines

API_KEY = "sk-preset-upstream-key"
REASONING_PIECES = ["The user", " greets;", " answer kindly."]
REPLY_PIECES = ["Hello", " there", "!"]
REASONING, REPLY = "".join(REASONING_PIECES), "".join(REPLY_PIECES)
PROMPT_TOKENS = 20
CACHED_TOKENS = 16
REASONING_TOKENS = 4
ANSWER_TOKENS = 3
COMPLETION_TOKENS = REASONING_TOKENS + ANSWER_TOKENS  # as OpenAI counts: reasoning included


@dataclass(frozen=True)
class Dialect:
    root: str  # the path of the provider's API root
    reasoning_field: str = "reasoning_content"
    cache: str = "openai"  # openai: prompt_tokens_details.cached_tokens; deepseek: prompt_cache_hit/miss_tokens;
    # moonshot: top-level cached_tokens
    reasoning_outside_completion: bool = False  # xAI: completion_tokens leaves the reasoning out
    usage_in_choice: bool = False  # Moonshot: a stream's usage sits in its last choice
    refused: tuple[str, ...] = ()  # fields answered with 422 (Mistral: extra_forbidden)
    usage_always: bool = False  # a stream ends with usage whether asked or not (Mistral)
    thinking_only_in_streams: bool = False  # Qwen3: a whole answer needs enable_thinking false


DIALECTS = {
    "deepseek": Dialect("/v1", cache="deepseek"),
    "moonshot": Dialect("/v1", cache="moonshot", usage_in_choice=True),
    "qwen": Dialect("/compatible-mode/v1", thinking_only_in_streams=True),
    "doubao": Dialect("/api/v3"),
    "siliconflow": Dialect("/v1"),
    "openrouter": Dialect("/api/v1", reasoning_field="reasoning"),
    "xai": Dialect("/v1", reasoning_outside_completion=True),
    "mistral": Dialect("/v1", refused=("stream_options", "max_completion_tokens"), usage_always=True),
    "groq": Dialect("/openai/v1", reasoning_field="reasoning"),
}


def usage(dialect: Dialect) -> dict:
    completion = ANSWER_TOKENS if dialect.reasoning_outside_completion else COMPLETION_TOKENS
    found: dict = {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "completion_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
    }
    if dialect.cache == "deepseek":
        found |= {"prompt_cache_hit_tokens": CACHED_TOKENS, "prompt_cache_miss_tokens": PROMPT_TOKENS - CACHED_TOKENS}
    elif dialect.cache == "moonshot":
        found["cached_tokens"] = CACHED_TOKENS
    else:
        found["prompt_tokens_details"] = {"cached_tokens": CACHED_TOKENS}
    return found


class FakePreset(RecordingFake):
    api_key = API_KEY
    auth_error = {"error": {"message": "Authentication Fails", "type": "authentication_error"}}

    def __init__(self, dialect: Dialect) -> None:
        super().__init__()
        self.dialect = dialect

    async def answer(self, request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
        dialect = self.dialect
        if request.path != f"{dialect.root}/chat/completions":
            return web.json_response({"error": {"message": f"no route {request.path}"}}, status=404)
        refused = [name for name in dialect.refused if name in body]
        if refused:
            detail = [{"type": "extra_forbidden", "loc": ["body", refused[0]], "msg": "Extra inputs are not permitted"}]
            return web.json_response({"object": "error", "message": {"detail": detail}}, status=422)
        if dialect.thinking_only_in_streams and not body.get("stream") and body.get("enable_thinking") is not False:
            message = "parameter.enable_thinking must be set to false for non-streaming calls"
            return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=400)
        base = {"id": "chatcmpl-preset", "created": 1764000000, "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": REPLY, dialect.reasoning_field: REASONING}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            whole = {**base, "object": "chat.completion", "choices": [choice], "usage": usage(dialect)}
            return web.json_response(whole)
        return await stream_lines(request, "text/event-stream", [*sse(self.chunks(body, base)), b"data: [DONE]\n\n"])

    def chunks(self, body: dict, base: dict) -> list[dict]:
        dialect = self.dialect
        deltas = [{dialect.reasoning_field: piece} for piece in REASONING_PIECES]
        deltas += [{"content": piece} for piece in REPLY_PIECES]
        chunk = {**base, "object": "chat.completion.chunk"}
        events = [{**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas]
        last = {"index": 0, "delta": {}, "finish_reason": "stop"}
        asked = (body.get("stream_options") or {}).get("include_usage")
        if dialect.usage_in_choice:
            events.append({**chunk, "choices": [{**last, "usage": usage(dialect)}]})
        elif dialect.usage_always:
            events.append({**chunk, "choices": [last], "usage": usage(dialect)})
        else:
            events.append({**chunk, "choices": [last]})
            if asked:
                events.append({**chunk, "choices": [], "usage": usage(dialect)})
        return events
