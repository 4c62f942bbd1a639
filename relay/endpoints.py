"""Body validation and prompt counting per client endpoint: each parses the body once."""

import orjson

from relay.adaptors.base import RelayRequest
from relay.errors import RelayError
from relay.tokenizer import count_messages


def load_body(raw: bytes) -> dict:
    if not raw:
        raise RelayError(400, "request body is empty: send a JSON object", "invalid_body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RelayError(400, f"request body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise RelayError(400, "request body must be a JSON object", "invalid_body")
    return body


def require_model(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise RelayError(400, "you must provide a model parameter", "missing_model", param="model")
    return model


def stream_flags(body: dict) -> tuple[bool, bool]:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RelayError(400, "stream must be a boolean", "invalid_value", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RelayError(400, "stream_options must be an object", "invalid_value", param="stream_options")
    return bool(stream), bool(stream and options and options.get("include_usage"))


def check_token_limits(body: dict) -> None:
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 2**30):
            raise RelayError(400, f"{name} must be a positive integer", "invalid_value", param=name)


def parse_chat(raw: bytes, path: str) -> RelayRequest:
    body = load_body(raw)
    model = require_model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RelayError(400, "messages must be a non-empty array", "missing_messages", param="messages")
    if not all(isinstance(message, dict) for message in messages):
        raise RelayError(400, "every message must be an object", "invalid_messages", param="messages")
    check_token_limits(body)
    stream, wants_usage = stream_flags(body)
    return RelayRequest("chat", model, body, raw, stream, wants_usage, path)


def count_chat(request: RelayRequest) -> int:
    return count_messages(request.model, request.body["messages"])
