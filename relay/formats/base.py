"""What an inbound format is: the API dialect a client speaks to the gateway.

A format finds the key in the client's request, parses and validates its body into the hub request (an
OpenAI chat body in a RelayRequest, which every adaptor takes; the client's own request rides along in
`RelayRequest.original` when the hub form is a conversion), says which channels speak it natively (those get
the client's request passed through), and renders answers, streams and errors in its own grammar.

Formats sit above the adaptors and never import them; adaptors know a native request only by its endpoint
name (RelayRequest.endpoint).
"""

from collections.abc import Callable, Sequence
from typing import Protocol

import orjson
from django.http import HttpRequest, HttpResponse

from billing.accounts.key_auth import KeyInfo
from channels_app.routing import ChannelInfo
from relay.adaptors.base import RelayRequest, StreamState, UpstreamFailure, Usage
from relay.endpoints import Endpoint
from relay.errors import RelayError

SESSION_HEADER = "X-Session-Id"


def text_field(body: dict, name: str) -> str | None:
    """A non-empty string field of the body (anything else names nothing)."""
    value = body.get(name)
    return value if isinstance(value, str) and value else None


class StreamWriter:
    """Writes one stream answer for the client: the hub's chunks (OpenAI chat chunk payloads, as the adaptors'
    stream converters emit them) in the format's framing, then how the stream ends."""

    relays_bytes = False  # a passed-through stream: the relay writes the upstream's bytes, not `frames`

    def frames(self, payloads: list[bytes]) -> bytes:
        raise NotImplementedError

    def wants_usage(self, state: StreamState) -> bool:
        """Whether `closing` needs the stream's final usage (worked out locally when the upstream sent none)."""
        return False

    def closing(self, state: StreamState, usage: Usage | None, failure: UpstreamFailure | None) -> bytes:
        """The end of the stream; `failure`: why the upstream broke it off mid-stream."""
        raise NotImplementedError


class EventWriter(Protocol):
    """A format's conversion of the hub's chunks into its own stream events (each method: the events' bytes)."""

    def start(self) -> list[bytes]: ...

    def feed(self, chunk: dict) -> list[bytes]: ...

    def finish(self, usage: Usage | None) -> list[bytes]: ...


class ConvertedStream(StreamWriter):
    """The hub's chunks as the format's event stream; `broken` ends one the upstream broke off."""

    def __init__(self, events: EventWriter) -> None:
        self.events = events
        self.started = False

    def frames(self, payloads: list[bytes]) -> bytes:
        written = []
        if not self.started:
            self.started = True
            written += self.events.start()
        for payload in payloads:
            written += self.events.feed(orjson.loads(payload))
        return b"".join(written)

    def wants_usage(self, state: StreamState) -> bool:
        return True

    def closing(self, state: StreamState, usage: Usage | None, failure: UpstreamFailure | None) -> bytes:
        return self.broken(failure) if failure is not None else b"".join(self.events.finish(usage))

    def broken(self, failure: UpstreamFailure) -> bytes:
        raise NotImplementedError


class PassedThrough(StreamWriter):
    """A stream in the client's format relayed as it came; only a break the upstream did not report itself adds
    the format's error event (`error_event`), after a blank line in case the break cut an event short."""

    relays_bytes = True

    def __init__(self, error_event: Callable[[UpstreamFailure], bytes]) -> None:
        self.error_event = error_event

    def closing(self, state: StreamState, usage: Usage | None, failure: UpstreamFailure | None) -> bytes:
        return b"\n\n" + self.error_event(failure) if failure is not None else b""


class InboundFormat:
    name: str
    endpoint: Endpoint  # validates, counts, reserves and prices the client's request
    # The hub form itself (OpenAI's): every channel takes its requests as they are and its answers need no
    # rendering, so the relay skips `native_for`, `to_hub` and `whole` (the chat hot path).
    is_hub = False
    # Passed-through answers are kept by the upstream under an id that later calls name (the Responses API):
    # the relay then asks the format to `remember` who got each, and which channels may `continue_on`.
    stores_answers = False

    def credential(self, request: HttpRequest) -> str:
        """The key the client sent, as billing.accounts.key_auth reads it (`Bearer sk-...` or `sk-...`)."""
        return request.META.get("HTTP_AUTHORIZATION", "")

    def native_for(self, channel_type: str, upstream_model: str) -> bool:
        """Whether a channel of this type serving this model speaks the format: the client's request is then
        passed through and the upstream's answer relayed as it is."""
        return False

    def session_identity(self, request: RelayRequest, http_request: HttpRequest, sources: Sequence[str]) -> str | None:
        """The conversation the request continues, read from those of its sources (names of
        settings.AFFINITY_SOURCE_NAMES) that the key's group honours; None when it names none. Requests of one
        conversation go to the same channel (channels_app.affinity). Here: the X-Session-Id header, else the
        body's prompt_cache_key (OpenAI's own name for it)."""
        if SESSION_HEADER in sources:
            header = http_request.META.get("HTTP_X_SESSION_ID")  # META: no header mapping built
            if header:
                return header
        return text_field(request.body, "prompt_cache_key") if "prompt_cache_key" in sources else None

    def to_hub(self, request: RelayRequest) -> RelayRequest:
        """The request in the hub form (OpenAI chat) that every adaptor takes."""
        return request

    def whole(self, request: RelayRequest, body: bytes, answer_id: str, usage: Usage) -> bytes:
        """The client's answer from the hub's whole answer (an OpenAI JSON body) and the usage it was billed."""
        return body

    def stream_writer(self, request: RelayRequest, answer_id: str, input_tokens: int) -> StreamWriter:
        raise NotImplementedError

    def native_writer(self) -> StreamWriter:
        """The writer of a passed-through stream."""
        raise NotImplementedError

    def error_response(self, error: RelayError) -> HttpResponse:
        raise NotImplementedError

    def answer_id(self, body: bytes) -> str:
        """The id of a passed-through whole answer (only where `stores_answers`)."""
        return ""

    async def remember(self, key: KeyInfo, channel: ChannelInfo, request: RelayRequest, answer_id: str) -> None:
        """Note that `channel` may store the passed-through answer `answer_id` to `request` for `key` (only where
        `stores_answers`)."""

    async def continue_on(
        self, key: KeyInfo, request: RelayRequest, candidates: list[ChannelInfo]
    ) -> list[ChannelInfo]:
        """The channels that may serve a request that continues an answer stored upstream (only where
        `stores_answers`)."""
        return candidates

    def log_note(self, native: bool) -> str:
        """What the consume log's content says first about the inbound format (nothing for OpenAI's)."""
        return ""
