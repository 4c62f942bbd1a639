"""OpenAI's Responses API as an inbound format (`POST /v1/responses`): Codex CLI and the openai SDK's `responses`.

- Keys come in `Authorization: Bearer`; errors are OpenAI's `{"error": {...}}`.
- OpenAI and Azure channels speak it natively: the client's request is passed through (the adaptors' "responses"
  endpoint) and the answer's bytes relayed unchanged. The upstream stores such a response: the gateway
  remembers which key and which channel created it (relay.stored_responses), the calls on it
  (relay.responses_api) go to that channel for that key only, and a request with its `previous_response_id`
  goes to that channel while it still serves the key's group. `background: true` is refused: such a response
  is generated after its answer, whose usage is all the gateway bills from.
- Every other channel gets the request converted to OpenAI chat (relay.formats.responses_convert.to_chat); its
  answer comes back as a response object (`from_chat`) or as the Responses event stream (`ResponsesStream`),
  which ends with `response.failed` when the upstream broke it off. Such a response is not stored anywhere.
"""

import logging
import time

import orjson
from django.conf import settings
from django.db import Error as DatabaseError
from django.http import HttpRequest, HttpResponse

from billing.accounts.key_auth import KeyInfo
from channels_app.routing import ChannelInfo
from gateway_project.db import run_db
from relay import media, stored_responses
from relay.adaptors.base import OPENAI_RESPONSES, RelayRequest, UpstreamFailure, Usage
from relay.endpoints import Endpoint, counts_images, load_body, positive_int, require_model, stream_flags
from relay.errors import RelayError, error_response
from relay.formats import responses_convert
from relay.formats.base import ConvertedStream, InboundFormat, PassedThrough, StreamWriter
from relay.tokenizer import Measure

log = logging.getLogger(__name__)

NATIVE_CHANNEL_TYPES = ("openai", "azure")


def response_id(answer_id: str) -> str:
    return f"resp_{answer_id}"


def error_event(failure: UpstreamFailure) -> bytes:
    """The `error` event that ends a passed-through stream the upstream broke off without saying so."""
    error = {"type": "error", "code": failure.code or "upstream_error", "message": failure.message, "param": None}
    return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"


def image_parts(items: object) -> list[dict]:
    """The `input_image` parts of the input items that have a URL (a data URL or an http(s) one), as chat parts."""
    found = []
    for item in items if isinstance(items, list) else ():
        content = item.get("content") if isinstance(item, dict) else None
        for part in content if isinstance(content, list) else ():
            url = part.get("image_url") if isinstance(part, dict) and part.get("type") == "input_image" else None
            if isinstance(url, str) and url:
                found.append({"type": "image_url", "image_url": {"url": url}})
    return found


class Responses(Endpoint):
    """A Responses request, as the client sent it: counted, reserved and priced like chat."""

    name = OPENAI_RESPONSES

    def parse(self, raw: bytes, request: HttpRequest) -> RelayRequest:
        body = load_body(raw)
        model = require_model(body)
        stream, _ = stream_flags(body)
        items = body.get("input")
        if not isinstance(items, str) and not (isinstance(items, list) and all(isinstance(i, dict) for i in items)):
            raise RelayError(400, "input: must be a string or an array of input items", param="input")
        if body.get("background") is True:
            message = "background responses are not supported: their usage comes after the answer, unbilled"
            raise RelayError(400, message, "unsupported_parameter", param="background")
        self.most_completion_tokens(body)
        return RelayRequest(self.name, model, body, raw, stream, False, request.path, passthrough=True)

    def most_completion_tokens(self, body: dict) -> int:
        return positive_int(body, "max_output_tokens") or settings.PRE_CONSUMED_TOKENS

    def prompt_tokens(self, request: RelayRequest, measure: Measure) -> int:
        return responses_convert.prompt_tokens(request.body, measure)

    def images(self, request: RelayRequest) -> list[media.ImagePart]:
        if not counts_images(request):
            return []
        return media.images_in([{"content": image_parts(request.body["input"])}])


class ResponsesEvents(ConvertedStream):
    """The hub's chunks as the Responses event stream."""

    events: responses_convert.ResponsesStream

    def broken(self, failure: UpstreamFailure) -> bytes:
        return b"".join(self.events.failed(failure.message))  # the Responses grammar: response.failed ends it


class OpenAIResponses(InboundFormat):
    name = "responses"
    endpoint = Responses()
    stores_answers = True

    def native_for(self, channel_type: str, upstream_model: str) -> bool:
        return channel_type in NATIVE_CHANNEL_TYPES

    def to_hub(self, request: RelayRequest) -> RelayRequest:
        chat = responses_convert.to_chat(request.body)
        return RelayRequest("chat", request.model, chat, orjson.dumps(chat), request.stream, request.stream)

    def whole(self, request: RelayRequest, body: bytes, answer_id: str, usage: Usage) -> bytes:
        answer = orjson.loads(body)
        created_at = int(time.time())
        return orjson.dumps(
            responses_convert.from_chat(answer, request.body, response_id(answer_id), created_at, usage)
        )

    def stream_writer(self, request: RelayRequest, answer_id: str, input_tokens: int) -> StreamWriter:
        stream = responses_convert.ResponsesStream(request.body, response_id(answer_id), int(time.time()))
        return ResponsesEvents(stream)

    def native_writer(self) -> StreamWriter:
        return PassedThrough(error_event)

    def error_response(self, error: RelayError) -> HttpResponse:
        return error_response(error)

    def log_note(self, native: bool) -> str:
        return "openai responses, passed through: " if native else "openai responses, converted to chat: "

    def answer_id(self, body: bytes) -> str:
        answer = orjson.loads(body)
        found = answer.get("id") if isinstance(answer, dict) else None
        return found if isinstance(found, str) else ""

    async def remember(self, key: KeyInfo, channel: ChannelInfo, request: RelayRequest, answer_id: str) -> None:
        if not answer_id or request.body.get("store") is False:  # the upstream keeps no such response
            return
        try:
            await run_db(stored_responses.remember, answer_id, key.token_id, channel.id)
        except DatabaseError:
            # The answer stands; only the calls on it will not find it.
            log.warning("response %s of channel %s: its owner could not be stored", answer_id, channel.id)

    async def continue_on(
        self, key: KeyInfo, request: RelayRequest, candidates: list[ChannelInfo]
    ) -> list[ChannelInfo]:
        """Only the channel that stores the previous response knows it; elsewhere the request is routed as any
        other (a converted channel then refuses it, as responses_convert.to_chat does)."""
        previous = request.body.get("previous_response_id")
        if not isinstance(previous, str) or not previous:
            return candidates
        owner = await run_db(stored_responses.owner_channel, previous, key.token_id)
        return [channel for channel in candidates if channel.id == owner] or candidates


RESPONSES = OpenAIResponses()
