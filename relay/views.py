"""Client-facing relay endpoints: parse, call the relay service, shape the answer."""

import functools
import logging
import time
from collections.abc import Callable

import orjson
from django.db import Error as DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from billing.accounts.key_auth import KeyInfo
from billing.accounts.key_balance import key_balance
from channels_app import routing
from gateway_project.db import run_db
from relay import count_tokens as token_counting
from relay import endpoints, responses_api, service
from relay.adaptors.base import GEMINI_COUNT_TOKENS
from relay.endpoints import Endpoint
from relay.errors import RelayError, database_down, error_response
from relay.formats import anthropic_messages, gemini_native, openai_chat, openai_responses
from relay.formats.base import InboundFormat
from relay.formats.openai_chat import OpenAIFormat

log = logging.getLogger(__name__)

MODEL_CREATED = int(time.mktime((2024, 1, 1, 0, 0, 0, 0, 0, 0)))
MODEL_CREATED_AT = "2024-01-01T00:00:00Z"  # Anthropic's model objects carry an RFC 3339 time


def only(*methods: str, answer: Callable[[RelayError], HttpResponse] = error_response):
    """Django's require_http_methods, with the 405 in the endpoint's error shape (OpenAI's by default)."""

    def decorate(view):
        @functools.wraps(view)
        async def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                allowed = ", ".join(methods)
                message = f"{request.method} is not allowed on {request.path}; use {allowed}"
                response = answer(RelayError(405, message, "method_not_allowed"))
                response["Allow"] = allowed
                return response
            return await view(request, *args, **kwargs)

        return checked

    return decorate


def relay_view(inbound: InboundFormat):
    @csrf_exempt
    @only("POST", answer=inbound.error_response)
    async def view(request: HttpRequest, **_path) -> HttpResponse:
        return await service.relay(request, inbound)

    view.__name__ = f"relay_{inbound.endpoint.name}"
    return view


def openai_view(endpoint: Endpoint):
    return relay_view(OpenAIFormat(endpoint))


chat_completions = relay_view(openai_chat.CHAT)
completions = openai_view(endpoints.COMPLETIONS)
embeddings = openai_view(endpoints.EMBEDDINGS)
moderations = openai_view(endpoints.MODERATIONS)
rerank = openai_view(endpoints.RERANK)
images = openai_view(endpoints.IMAGES)
speech = openai_view(endpoints.SPEECH)
transcriptions = openai_view(endpoints.TRANSCRIPTIONS)
messages = relay_view(anthropic_messages.MESSAGES)
responses = relay_view(openai_responses.RESPONSES)


def json_response(body: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def speaks_anthropic(request: HttpRequest) -> bool:
    """Anthropic's SDKs send `anthropic-version` with every request; the answer then takes their shapes."""
    return "anthropic-version" in request.headers


def speaks_gemini(request: HttpRequest) -> bool:
    """Every `/v1beta/` path is Gemini's; under `/v1/`, a key in Gemini's places (relay.formats.gemini_native)."""
    return request.path.startswith("/v1beta/") or gemini_native.speaks_gemini(request)


def client_errors(request: HttpRequest) -> Callable[[RelayError], HttpResponse]:
    if speaks_gemini(request):
        return gemini_native.error_response
    return anthropic_messages.error_response if speaks_anthropic(request) else error_response


def errors_answered_by(answer_for: Callable[[HttpRequest], Callable[[RelayError], HttpResponse]]):
    """A refused key and an unreachable database answered by `answer_for(request)`, as the relay answers them."""

    def decorate(view):
        @functools.wraps(view)
        async def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            answer = answer_for(request)
            try:
                return await view(request, *args, **kwargs)
            except RelayError as error:
                return answer(error)
            except DatabaseError:
                log.exception("%s: the database is unavailable", request.path)
                return answer(database_down())

        return wrapped

    return decorate


openai_errors = errors_answered_by(client_errors)  # in the shape of the client's SDK
anthropic_errors = errors_answered_by(lambda _request: anthropic_messages.error_response)
google_errors = errors_answered_by(lambda _request: gemini_native.error_response)


async def authenticated(request: HttpRequest) -> KeyInfo:
    """The key in `Authorization: Bearer`, in Anthropic's `x-api-key` or in Gemini's places."""
    inbound = gemini_native.GENERATE_SSE if speaks_gemini(request) else anthropic_messages.MESSAGES
    key, _ = await service.authenticate(inbound.credential(request), request)
    return key


async def usable_models(key: KeyInfo) -> list[str]:
    index = await routing.aget_index()
    return [name for name in index.models_for_group(key.group) if key.allows(name)]


def model_object(name: str) -> dict:
    return {"id": name, "object": "model", "created": MODEL_CREATED, "owned_by": "gateway"}


def anthropic_model_object(name: str) -> dict:
    return {"type": "model", "id": name, "display_name": name, "created_at": MODEL_CREATED_AT}


def anthropic_model_list(names: list[str]) -> dict:
    return {
        "data": [anthropic_model_object(name) for name in names],
        "has_more": False,
        "first_id": names[0] if names else None,
        "last_id": names[-1] if names else None,
    }


def gemini_model_object(name: str) -> dict:
    embeds = "embedding" in name
    methods = ["embedContent", "batchEmbedContents"] if embeds else ["generateContent", "streamGenerateContent"]
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name,
        "supportedGenerationMethods": [*methods, GEMINI_COUNT_TOKENS],
    }


@only("GET")
@openai_errors
async def list_models(request: HttpRequest) -> HttpResponse:
    """OpenAI's model list, or Anthropic's or Gemini's for their clients (every model on one page)."""
    names = await usable_models(await authenticated(request))
    if speaks_gemini(request):
        return json_response({"models": [gemini_model_object(name) for name in names]})
    if speaks_anthropic(request):
        return json_response(anthropic_model_list(names))
    return json_response({"object": "list", "data": [model_object(name) for name in names]})


@only("GET")
@openai_errors
async def retrieve_model(request: HttpRequest, model: str) -> HttpResponse:
    key = await authenticated(request)
    index = await routing.aget_index()
    model = model.removeprefix("models/") if speaks_gemini(request) else model
    if not (key.allows(model) and index.candidates(key.group, model)):
        raise RelayError(404, f"The model '{model}' does not exist", "model_not_found", param="model")
    if speaks_gemini(request):
        return json_response(gemini_model_object(model))
    return json_response(anthropic_model_object(model) if speaks_anthropic(request) else model_object(model))


@csrf_exempt
@only("POST", answer=gemini_native.error_response)
async def gemini_method(request: HttpRequest, version: str, model: str, method: str) -> HttpResponse:
    """`models/{model}:{method}`: countTokens here, the rest through the relay in the method's format."""
    if method == GEMINI_COUNT_TOKENS:
        return await gemini_count_tokens(request)
    inbound = gemini_native.format_for(method, request.GET.get("alt"))
    if inbound is None:
        error = RelayError(404, f"method {method!r} is not served by this gateway", "not_found")
        return gemini_native.error_response(error)
    return await service.relay(request, inbound)


@google_errors
async def gemini_count_tokens(request: HttpRequest) -> HttpResponse:
    return await token_counting.gemini_count_tokens(request)


async def gemini_not_found(request: HttpRequest, *_args, **_kwargs) -> HttpResponse:
    error = RelayError(404, f"Invalid URL ({request.method} {request.path})", "not_found")
    return gemini_native.error_response(error)


@csrf_exempt
@only("POST", answer=anthropic_messages.error_response)
@anthropic_errors
async def count_tokens(request: HttpRequest) -> HttpResponse:
    """Anthropic's token count: errors in Anthropic's shape, whatever the client sends."""
    return await token_counting.count_tokens(request)


def stored_response_view(*methods: str):
    """A call on a stored response (relay.responses_api): sent to the channel that stores it, for its key only."""

    @csrf_exempt
    @only(*methods)
    @openai_errors
    async def view(request: HttpRequest, response_id: str) -> HttpResponse:
        return await responses_api.stored_response(request, response_id)

    return view


stored_response = stored_response_view("GET", "DELETE")
cancel_response = stored_response_view("POST")
response_input_items = stored_response_view("GET")


@csrf_exempt
@only("POST")
@openai_errors
async def response_input_tokens(request: HttpRequest) -> HttpResponse:
    return await responses_api.input_tokens(request)


@only("GET")
@openai_errors
async def billing_subscription(request: HttpRequest) -> HttpResponse:
    balance = await run_db(key_balance, await authenticated(request))
    return json_response(
        {
            "object": "billing_subscription",
            "has_payment_method": True,
            "soft_limit_usd": balance.total_usd,
            "hard_limit_usd": balance.total_usd,
            "system_hard_limit_usd": balance.total_usd,
            "access_until": balance.access_until,
        }
    )


@only("GET")
@openai_errors
async def billing_usage(request: HttpRequest) -> HttpResponse:
    balance = await run_db(key_balance, await authenticated(request))
    return json_response({"object": "list", "total_usage": round(balance.used_usd * 100, 4), "daily_costs": []})


async def not_implemented(request: HttpRequest, *_args, **_kwargs) -> HttpResponse:
    error = RelayError(501, f"{request.path} is not implemented by this gateway", "api_not_implemented")
    return error_response(error)


async def not_found(request: HttpRequest, *_args, **_kwargs) -> HttpResponse:
    error = RelayError(404, f"Invalid URL ({request.method} {request.path})", "not_found")
    return error_response(error)
