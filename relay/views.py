"""Client-facing relay endpoints: parse, call the relay service, shape the answer."""

import time

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from billing import keys
from channels_app import routing
from relay import endpoints, service
from relay.errors import RelayError, error_response

MODEL_CREATED = int(time.mktime((2024, 1, 1, 0, 0, 0, 0, 0, 0)))


@csrf_exempt
@require_POST
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await service.relay_json(request, endpoints.parse_chat, endpoints.count_chat)


@require_GET
async def list_models(request: HttpRequest) -> HttpResponse:
    try:
        key, _ = await keys.authenticate(request.headers.get("Authorization", ""), service.client_ip(request))
    except keys.KeyRejected as rejected:
        return error_response(RelayError(rejected.status, str(rejected), rejected.code))
    index = await routing.aget_index()
    names = index.models_for_group(key.group)
    if key.models is not None:
        names = [name for name in names if name in key.models]
    data = [{"id": name, "object": "model", "created": MODEL_CREATED, "owned_by": "gateway"} for name in names]
    return HttpResponse(orjson.dumps({"object": "list", "data": data}), content_type="application/json")


async def not_found(request: HttpRequest, *_args, **_kwargs) -> HttpResponse:
    error = RelayError(404, f"Invalid URL ({request.method} {request.path})", "not_found")
    return error_response(error)
