"""OpenAI's format: chat completions and the rest of the OpenAI surface (completions, embeddings, images, ...).

It is the hub form itself, so its conversion is the identity: the adaptors take its requests and give back its
answers. Streams are OpenAI chunks framed as `data:` lines, ended by a usage chunk when the client asked for one
(`stream_options.include_usage`) and `data: [DONE]`; errors are `{"error": {message, type, param, code}}`.
"""

import orjson
from django.http import HttpResponse

from relay import endpoints, sse
from relay.adaptors.base import RelayRequest, StreamState, UpstreamFailure, Usage
from relay.endpoints import Endpoint
from relay.errors import RelayError, error_response
from relay.formats.base import InboundFormat, StreamWriter
from relay.streaming import ChunkShape


class OpenAIStream(StreamWriter):
    def __init__(self, request: RelayRequest, answer_id: str) -> None:
        self.request = request
        self.answer_id = answer_id

    def frames(self, payloads: list[bytes]) -> bytes:
        return sse.frames(payloads)

    def wants_usage(self, state: StreamState) -> bool:
        return self.request.wants_usage and not state.usage_sent

    def closing(self, state: StreamState, usage: Usage | None, failure: UpstreamFailure | None) -> bytes:
        tail = []
        if failure is not None:
            error = RelayError(502, failure.message, "stream_interrupted", type="upstream_error")
            tail.append(orjson.dumps(error.body()))
        if usage is not None:
            shape = ChunkShape(self.request, state.chunk_id or f"chatcmpl-{self.answer_id}", state.created)
            tail.append(shape.usage(usage))
        return sse.frames([*tail, sse.DONE])


class OpenAIFormat(InboundFormat):
    name = "openai"
    is_hub = True

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def stream_writer(self, request: RelayRequest, answer_id: str, input_tokens: int) -> StreamWriter:
        return OpenAIStream(request, answer_id)

    def error_response(self, error: RelayError) -> HttpResponse:
        return error_response(error)


CHAT = OpenAIFormat(endpoints.CHAT)
