"""`POST /v1/messages/count_tokens` and Gemini's `models/{model}:countTokens`: free, nothing reserved, nothing
logged.

The channel the model would be routed to decides who counts: a channel that speaks the client's format is asked
(Anthropic for Messages, Gemini and Gemini on Vertex for Gemini: the client's request passed through, so the
count is the provider's own), any other channel's model is counted here with tiktoken.
"""

import asyncio

import orjson
from django.http import HttpRequest, HttpResponse

from channels_app import routing, selection
from relay import service, tokenizer
from relay.adaptors.base import ANTHROPIC_COUNT_TOKENS, GEMINI_COUNT_TOKENS, RelayRequest, UpstreamFailed
from relay.endpoints import load_body, require_model
from relay.errors import RelayError
from relay.exchange import Exchange
from relay.formats import anthropic_convert, anthropic_messages, gemini_convert, gemini_native
from relay.formats.anthropic_messages import MESSAGES

COUNTED_BY_UPSTREAM = "anthropic"  # the channel type that has Anthropic's count_tokens


async def count_tokens(request: HttpRequest) -> HttpResponse:
    key, pinned = await service.authenticate(MESSAGES.credential(request), request)
    raw = service.read_body(request)
    body = load_body(raw)
    model = require_model(body)
    service.check_model(key, model)
    channel = await routed_channel(key.group, pinned, model)
    if channel is not None and channel.type == COUNTED_BY_UPSTREAM:
        headers = anthropic_messages.forwarded_headers(request)
        native = RelayRequest(
            ANTHROPIC_COUNT_TOKENS, model, body, raw, False, False, request.path, passthrough=True, headers=headers
        )
        return await asked(channel, native)
    tokens = await asyncio.to_thread(anthropic_convert.prompt_tokens, body, tokenizer.Tokens(model))
    return HttpResponse(orjson.dumps({"input_tokens": tokens}), content_type="application/json")


async def gemini_count_tokens(request: HttpRequest) -> HttpResponse:
    key, pinned = await service.authenticate(gemini_native.credential(request), request)
    raw = service.read_body(request)
    body = load_body(raw)
    model = gemini_native.path_model(request)
    service.check_model(key, model)
    channel = await routed_channel(key.group, pinned, model)
    if channel is not None and gemini_native.GENERATE_SSE.native_for(channel.type, channel.upstream_model(model)):
        native = RelayRequest(GEMINI_COUNT_TOKENS, model, body, raw, False, False, request.path, passthrough=True)
        return await asked(channel, native)
    # countTokens takes the contents alone, or a whole generateContentRequest (system instruction and tools too).
    counted = body.get("generateContentRequest")
    counted = counted if isinstance(counted, dict) else body
    tokens = await asyncio.to_thread(gemini_convert.prompt_tokens, counted, tokenizer.Tokens(model))
    return HttpResponse(orjson.dumps({"totalTokens": tokens}), content_type="application/json")


async def routed_channel(group: str, pinned: int | None, model: str) -> routing.ChannelInfo | None:
    index = await routing.aget_index()
    candidates = service.pinned_channel(index, pinned) if pinned else index.candidates(group, model)
    return next(selection.channels_to_try(candidates, 1), None)


async def asked(channel: routing.ChannelInfo, native: RelayRequest) -> HttpResponse:
    """The channel's answer to a call that is not billed (a count, a call on a stored response), as it came."""
    exchange = Exchange(channel, native)
    try:
        await exchange.prepare()
        response = await exchange.answer(stream=False, status_map=channel.status_code_mapping)
    except UpstreamFailed as failed:
        failure = failed.failure
        message = exchange.scrub(failure.message)
        raise RelayError(failure.status, message, failure.code, failure.type) from None
    return HttpResponse(response.content, content_type=response.headers.get("Content-Type", "application/json"))
