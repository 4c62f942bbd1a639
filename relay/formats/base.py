"""What an inbound format is: the API dialect a client speaks to the gateway.

A format finds the key in the client's request, parses and validates its body into the hub request (an
OpenAI chat body in a RelayRequest, which every adaptor takes; the client's own request rides along in
`RelayRequest.original` when the hub form is a conversion), says which channels speak it natively (those get
the client's request passed through), and renders answers, streams and errors in its own grammar.

Formats sit above the adaptors and never import them; adaptors know a native request only by its endpoint
name (RelayRequest.endpoint).
"""

from collections.abc import Sequence

from django.http import HttpRequest, HttpResponse

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


class InboundFormat:
    name: str
    endpoint: Endpoint  # validates, counts, reserves and prices the client's request
    # The hub form itself (OpenAI's): every channel takes its requests as they are and its answers need no
    # rendering, so the relay skips `native_for`, `to_hub` and `whole` (the chat hot path).
    is_hub = False

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

    def log_note(self, native: bool) -> str:
        """What the consume log's content says first about the inbound format (nothing for OpenAI's)."""
        return ""
