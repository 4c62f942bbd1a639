"""Client-facing relay endpoints: parse, call the relay service, shape the answer."""

import functools
import logging
import time

import orjson
from django.db import Error as DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from billing.accounts.key_auth import KeyInfo
from billing.accounts.key_balance import key_balance
from channels_app import routing
from gateway_project.db import run_db
from relay import endpoints, service
from relay.endpoints import Endpoint
from relay.errors import RelayError, database_down, error_response

log = logging.getLogger(__name__)

MODEL_CREATED = int(time.mktime((2024, 1, 1, 0, 0, 0, 0, 0, 0)))


def only(method: str):
    """Django's require_GET/require_POST, with the 405 in the OpenAI error shape."""

    def decorate(view):
        @functools.wraps(view)
        async def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method != method:
                message = f"{request.method} is not allowed on {request.path}; use {method}"
                response = error_response(RelayError(405, message, "method_not_allowed"))
                response["Allow"] = method
                return response
            return await view(request, *args, **kwargs)

        return checked

    return decorate


def relay_view(endpoint: Endpoint):
    @csrf_exempt
    @only("POST")
    async def view(request: HttpRequest, **_path) -> HttpResponse:
        return await service.relay(request, endpoint)

    view.__name__ = f"relay_{endpoint.name}"
    return view


chat_completions = relay_view(endpoints.CHAT)
completions = relay_view(endpoints.COMPLETIONS)
embeddings = relay_view(endpoints.EMBEDDINGS)
moderations = relay_view(endpoints.MODERATIONS)
rerank = relay_view(endpoints.RERANK)
images = relay_view(endpoints.IMAGES)
speech = relay_view(endpoints.SPEECH)
transcriptions = relay_view(endpoints.TRANSCRIPTIONS)


def json_response(body: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def openai_errors(view):
    """A refused key and an unreachable database answered in the OpenAI error shape, as the relay does."""

    @functools.wraps(view)
    async def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return await view(request, *args, **kwargs)
        except RelayError as error:
            return error_response(error)
        except DatabaseError:
            log.exception("%s: the database is unavailable", request.path)
            return error_response(database_down())

    return wrapped


async def authenticated(request: HttpRequest) -> KeyInfo:
    key, _ = await service.authenticate(request.headers.get("Authorization", ""), request)
    return key


async def usable_models(key: KeyInfo) -> list[str]:
    index = await routing.aget_index()
    return [name for name in index.models_for_group(key.group) if key.allows(name)]


def model_object(name: str) -> dict:
    return {"id": name, "object": "model", "created": MODEL_CREATED, "owned_by": "gateway"}


@only("GET")
@openai_errors
async def list_models(request: HttpRequest) -> HttpResponse:
    key = await authenticated(request)
    return json_response({"object": "list", "data": [model_object(name) for name in await usable_models(key)]})


@only("GET")
@openai_errors
async def retrieve_model(request: HttpRequest, model: str) -> HttpResponse:
    key = await authenticated(request)
    index = await routing.aget_index()
    if not (key.allows(model) and index.candidates(key.group, model)):
        error = RelayError(404, f"The model '{model}' does not exist", "model_not_found", param="model")
        return error_response(error)
    return json_response(model_object(model))


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
