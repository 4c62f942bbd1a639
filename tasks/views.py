"""Client endpoints of the asynchronous-task platforms: /mj/... (also under /mj-fast, /mj-relax, /mj-turbo)
and /suno/.... Each view names the platform and calls one function of tasks.service; a TaskError
(or a RelayError of the relay's own checks of the key and the body) becomes that platform's error shape."""

import functools
from collections.abc import Awaitable, Callable
from typing import cast

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from relay.errors import RelayError
from tasks import service
from tasks.adaptors import midjourney, suno
from tasks.adaptors.base import TaskAdaptor, TaskError
from tasks.adaptors.registry import task_adaptor

MJ = cast(midjourney.MidjourneyAdaptor, task_adaptor("midjourney"))  # the registry holds it as a TaskAdaptor
SUNO = task_adaptor("suno")

View = Callable[..., Awaitable[HttpResponse]]


def shaped(adaptor: TaskAdaptor) -> Callable[[View], View]:
    def wrap(view: View) -> View:
        @functools.wraps(view)
        async def run(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            try:
                return await view(request, *args, **kwargs)
            except RelayError as error:
                return refusal(adaptor, TaskError.of(error))
            except TaskError as error:
                return refusal(adaptor, error)

        return run

    return wrap


def refusal(adaptor: TaskAdaptor, error: TaskError) -> HttpResponse:
    return HttpResponse(orjson.dumps(adaptor.error_body(error)), status=error.status, content_type="application/json")


@csrf_exempt
@require_POST
@shaped(MJ)
async def mj_submit(request: HttpRequest, route: str, mode: str | None = None) -> HttpResponse:
    # The speed mode is not forwarded: every upstream is called at {base}/mj/... (as new-api does).
    return await service.submit(request, MJ, lambda body: midjourney.parse_submit(route, body, mode))


@require_GET
@shaped(MJ)
async def mj_fetch(request: HttpRequest, task_id: str, mode: str | None = None) -> HttpResponse:
    return await service.fetch_one(request, MJ, task_id)


@csrf_exempt
@require_POST
@shaped(MJ)
async def mj_list_by_condition(request: HttpRequest, mode: str | None = None) -> HttpResponse:
    return await service.fetch_many(request, MJ)


@require_GET
@shaped(MJ)
async def mj_image_seed(request: HttpRequest, task_id: str, mode: str | None = None) -> HttpResponse:
    return await service.image_seed(request, MJ, task_id)


@csrf_exempt
@require_POST
@shaped(MJ)
async def mj_notify(request: HttpRequest, mode: str | None = None) -> HttpResponse:
    return await service.notify(request)


@csrf_exempt
@require_POST
@shaped(SUNO)
async def suno_submit(request: HttpRequest, action: str) -> HttpResponse:
    return await service.submit(request, SUNO, lambda body: suno.parse_submit(action, body))


@require_GET
@shaped(SUNO)
async def suno_fetch(request: HttpRequest, task_id: str) -> HttpResponse:
    return await service.fetch_one(request, SUNO, task_id)


@csrf_exempt
@require_POST
@shaped(SUNO)
async def suno_fetch_many(request: HttpRequest) -> HttpResponse:
    return await service.fetch_many(request, SUNO)
