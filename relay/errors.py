"""The OpenAI error shape, for every error a relay client sees."""

import orjson
from django.http import HttpResponse


class RelayError(Exception):
    """An error answered to the client as `{"error": {message, type, param, code}}` with `status`."""

    def __init__(
        self, status: int, message: str, code: str | int | None = None, type: str | None = None, param=None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type or default_type(status)
        self.param = param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def default_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error" if status != 503 else "service_unavailable"
    return "invalid_request_error"


def error_response(error: RelayError, request_id: str | None = None) -> HttpResponse:
    response = HttpResponse(orjson.dumps(error.body()), status=error.status, content_type="application/json")
    if request_id:
        response["X-Request-Id"] = request_id
    return response


def database_down() -> RelayError:
    return RelayError(503, "the gateway's database is unavailable; retry shortly", "db_down")


def body_too_large(limit: int) -> RelayError:
    return RelayError(413, f"request body is larger than {limit} bytes", "body_too_large")
