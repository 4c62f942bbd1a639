"""The management API (django-ninja): authentication, error shapes, and the routers of each app.

Every error answers `{"detail": "..."}` (README, "Management API"); a validation error also carries the
structured `errors` list so tools can point at each field.
"""

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI, Router, Schema, Swagger
from ninja.errors import AuthenticationError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.openapi.schema import OpenAPISchema

from billing.accounts.api import me_router, tokens_router, users_router
from billing.api import logs_router, pricing_router
from billing.payments.redemption_api import redeem_router, redemptions_router
from billing.payments.topup_api import topup_router
from billing.quota import QuotaExceeded
from channels_app.api import router as channels_router
from gateway_project.auth import signed_in
from gateway_project.errors import describe
from tasks.api import router as tasks_router

REQUEST_PARTS = {"body", "query", "path", "header", "cookie", "form"}
ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"type": "string"}, "errors": {"type": "array", "items": {"type": "object"}}},
    "required": ["detail"],
}


class GatewayAPI(NinjaAPI):
    """NinjaAPI whose OpenAPI document also lists the error answers every operation can give."""

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict | None = None) -> OpenAPISchema:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        schema["components"].setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        for operation in (op for ops in schema["paths"].values() for op in ops.values()):
            for status, description in error_statuses(operation).items():
                operation["responses"].setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
        return schema


def error_statuses(operation: dict) -> dict[int, str]:
    """The errors any operation can answer, from what it takes: a token, a body, parameters, an id in the path.
    Errors of one operation only (409 when quota runs short, ...) are in its own `response=`."""
    statuses = {}
    parameters = operation.get("parameters", [])
    if "requestBody" in operation:
        statuses[400] = "The body is not valid JSON"
    if operation.get("security"):
        statuses[401] = "No or an invalid access token"
        statuses[403] = "The caller may not do this (staff only, another user's data)"
    if any(parameter["in"] == "path" for parameter in parameters):
        statuses[404] = "No such object (or one the caller may not see)"
    if parameters or "requestBody" in operation:
        statuses[422] = "A parameter or field is invalid; `detail` names it"
    return statuses


api = GatewayAPI(
    title="LLM gateway management API",
    version=settings.VERSION,
    description="See the README's Management API section. Authenticate with `Authorization: Bearer <access token>`.",
    auth=signed_in,
    urls_namespace="api",
    # No badge fetched from validator.swagger.io: the docs page asks nothing of any other host.
    docs=Swagger(settings={"validatorUrl": None}),
)
api.add_router("/channels", channels_router)
api.add_router("/users", users_router)
api.add_router("/me", me_router)
api.add_router("/tokens", tokens_router)
api.add_router("/logs", logs_router)
api.add_router("/pricing", pricing_router)
api.add_router("/redemptions", redemptions_router)
api.add_router("/redeem", redeem_router)
api.add_router("/topup", topup_router)
api.add_router("/tasks", tasks_router)

# Registered last, so it only gets what no operation matched: an id that is not a number, a typo in a path.
unmatched_router = Router(auth=None)


@unmatched_router.api_operation(["GET", "POST", "PUT", "PATCH", "DELETE"], "/{path:rest}", include_in_schema=False)
def no_such_path(request: HttpRequest, rest: str) -> HttpResponse:
    return _detail(request, 404, _("Not Found"))


api.add_router("", unmatched_router)


class ServerStatus(Schema):
    version: str
    database: str
    cache: str
    cache_ok: bool
    task_runner: str


@api.get("/status", auth=None, response=ServerStatus, tags=["status"])
def status(request: HttpRequest):
    return {
        "version": settings.VERSION,
        "database": settings.DATABASE_VENDOR,
        "cache": "redis" if settings.REDIS_CONN_STRING else "memory",
        "cache_ok": cache_reachable(),
        "task_runner": "celery" if settings.CELERY_BROKER_URL else "embedded",
    }


def cache_reachable() -> bool:
    """False while Redis is down (the gateway then serves from the database)."""
    if not settings.REDIS_CONN_STRING:
        return True
    try:
        return bool(cache.client.get_client().ping())
    except Exception:  # any connection or protocol error means "not reachable"
        return False


def _detail(request: HttpRequest, status_code: int, detail: str, **extra: object) -> HttpResponse:
    return api.create_response(request, {"detail": detail, **extra}, status=status_code)


@api.exception_handler(AuthenticationError)
def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _detail(request, 401, _("missing or invalid access token: send Authorization: Bearer <access token>"))


@api.exception_handler(NinjaValidationError)
def invalid_request(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    problems = [f"{field_name(error.get('loc', ()))}: {error.get('msg', 'invalid')}" for error in exc.errors]
    return _detail(request, 422, "; ".join(problems) or _("invalid request"), errors=exc.errors)


@api.exception_handler(DjangoValidationError)
def invalid_value(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    return _detail(request, 422, describe(exc))


@api.exception_handler(PermissionDenied)
def forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _detail(request, 403, str(exc) or _("not allowed"))


@api.exception_handler(ObjectDoesNotExist)
def not_found(request: HttpRequest, exc: ObjectDoesNotExist) -> HttpResponse:
    return _detail(request, 404, _("Not Found"))


@api.exception_handler(DataError)
def unstorable(request: HttpRequest, exc: DataError) -> HttpResponse:
    # What SQLite stores and PostgreSQL or MySQL refuse: a NUL character, an over-long text, a number out of range.
    return _detail(request, 422, _("a value is out of range, too long, or has characters the database cannot store"))


@api.exception_handler(QuotaExceeded)
def quota_conflict(request: HttpRequest, exc: QuotaExceeded) -> HttpResponse:
    return _detail(request, 409, str(exc))


def field_name(loc: tuple | list) -> str:
    """`["body", "payload", "weight"]` -> `weight`; `["query", "limit"]` -> `limit`."""
    parts = [str(part) for part in loc]
    if parts and parts[0] in REQUEST_PARTS:
        parts = parts[1:]
    if len(parts) > 1 and parts[0] in {"payload", "filters", "ninja_pagination"}:
        parts = parts[1:]
    return ".".join(parts) or "body"
