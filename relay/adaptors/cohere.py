"""Cohere chat (v1) and rerank behind the OpenAI chat and the Jina rerank formats (specs: others.md
section 4, rerank.md section 3).

Decisions worth knowing:
- The latest user message is Cohere's `message`; every other message keeps its place in `chat_history`
  (user -> USER, assistant -> CHATBOT), earlier user turns included. System and developer messages are
  joined into `preamble`, Cohere's system prompt.
- settings.COHERE_SAFETY_SETTING is sent as `safety_mode` (CONTEXTUAL or STRICT); NONE, the default,
  leaves the field out, so Cohere applies no safety preamble of its own.
- Tools, tool results and images are refused with a 400 rather than dropped: Cohere v1 wants them in
  shapes (tool_results pairs, no images) that an OpenAI transcript cannot be mapped to faithfully.
- Usage comes from `meta.billed_units` (what Cohere bills), not `meta.tokens`, which adds its scaffolding.
- Rerank: `top_n` absent is sent as the number of documents (Cohere would otherwise return few), and the
  client's `return_documents` (absent = true) is honoured. Cohere bills rerank in search units, so the call
  is billed by the local token count unless Cohere reports input tokens.
"""

from django.conf import settings

from channels_app.channel_types import new_api, one_api
from channels_app.routing import ChannelInfo
from relay.adaptors.base import (
    Adaptor,
    RelayRequest,
    StreamConverter,
    UpstreamFailed,
    UpstreamFailure,
    UpstreamRequest,
    Usage,
    load_json,
)
from relay.adaptors.openai_format import (
    ChunkWriter,
    assistant_message,
    completion_body,
    content_parts,
    last_user_index,
    new_completion_id,
    renamed_numeric_fields,
    reported_usage,
    request_json,
    require_endpoint,
    rerank_answer,
    rerank_body,
    stop_sequences,
    stream_event,
    unsupported,
    usage_object,
)

SLUG = "cohere"
NO_SAFETY_MODE = "NONE"
HISTORY_ROLES = {"user": "USER", "assistant": "CHATBOT"}
SAMPLING_FIELDS = {
    "temperature": "temperature",
    "top_p": "p",
    "top_k": "k",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
}
RERANK_FIELDS = ("model", "query", "documents", "top_n", "return_documents", "max_chunks_per_doc", "rank_fields")
FINISH_REASONS = {"MAX_TOKENS": "length", "ERROR_TOXIC": "content_filter"}


def finish_reason(reason: object) -> str:
    return FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"


def text_of(message: dict) -> str:
    texts = []
    for part in content_parts(message.get("content")):
        if part.get("type") != "text":
            raise unsupported(f"content part {part.get('type')!r}", SLUG)
        texts.append(part.get("text") or "")
    return "\n".join(texts)


def conversation_fields(messages: list[dict]) -> dict:
    current = last_user_index(messages, SLUG)
    preamble, history = [], []
    for position, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer"):
            preamble.append(text_of(message))
        elif role not in HISTORY_ROLES or message.get("tool_calls"):
            raise unsupported("tool calls and tool results", SLUG)
        elif position != current:
            history.append({"role": HISTORY_ROLES[role], "message": text_of(message)})
    fields: dict = {"message": text_of(messages[current]), "chat_history": history}
    if any(preamble):
        fields["preamble"] = "\n".join(text for text in preamble if text)
    return fields


def chat_body(request: RelayRequest, model: str) -> dict:
    body = request.body
    if body.get("tools"):
        raise unsupported("tool calls and tool results", SLUG)
    out = {"model": model, **conversation_fields(body["messages"]), "stream": request.stream}
    out.update(renamed_numeric_fields(body, SAMPLING_FIELDS))
    stops = stop_sequences(body.get("stop"))
    if stops:
        out["stop_sequences"] = stops
    safety_mode = settings.COHERE_SAFETY_SETTING.upper()
    if safety_mode != NO_SAFETY_MODE:
        out["safety_mode"] = safety_mode
    return out


def cohere_rerank_body(request: RelayRequest, model: str) -> dict:
    body = rerank_body(request, model)
    body["top_n"] = body.get("top_n") or len(body["documents"])
    return {name: body[name] for name in RERANK_FIELDS if name in body}


def billed_usage(response: object) -> Usage:
    meta = response.get("meta") if isinstance(response, dict) else None
    units = meta.get("billed_units") if isinstance(meta, dict) else None
    units = units if isinstance(units, dict) else {}
    return Usage(int(units.get("input_tokens") or 0), int(units.get("output_tokens") or 0))


class CohereAdaptor(Adaptor):
    slug = SLUG
    label = "Cohere"
    old_types = (new_api(34), one_api(35))
    default_base_url = "https://api.cohere.ai"

    def build_request(self, request: RelayRequest, channel: ChannelInfo) -> UpstreamRequest:
        require_endpoint(request, SLUG, "chat", "rerank")
        model = channel.upstream_model(request.model)
        base = self.base_url(channel).removesuffix("/v1")
        if request.endpoint == "rerank":
            url, body = f"{base}/v1/rerank", cohere_rerank_body(request, model)
        else:
            url, body = f"{base}/v1/chat", chat_body(request, model)
        headers = {"Authorization": f"Bearer {channel.key}", "Content-Type": "application/json"}
        return UpstreamRequest(url=url, headers=headers, content=request_json(body))

    def convert_response(self, request: RelayRequest, content: bytes) -> tuple[bytes, Usage | None, str]:
        body = load_json(content)
        usage = billed_usage(body)
        if request.endpoint == "rerank":
            return rerank_answer(request, body.get("results"), usage.prompt_tokens)
        message = assistant_message(body.get("text") or "", [])
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": finish_reason(body.get("finish_reason")),
        }
        answer = completion_body(request, body.get("response_id") or new_completion_id(), [choice], usage_object(usage))
        return answer, reported_usage(usage), message["content"]

    def stream_converter(self, request: RelayRequest) -> StreamConverter:
        return CohereStream(request)


class CohereStream(StreamConverter):
    """Cohere's NDJSON events: text deltas, then `stream-end` with the reason and the whole response."""

    def __init__(self, request: RelayRequest) -> None:
        super().__init__(request)
        self.writer = ChunkWriter(request, self.state)
        self.ended = False

    def feed(self, payload: bytes) -> list[bytes]:
        event = stream_event(payload, SLUG) or {}
        kind = event.get("event_type")
        if kind == "stream-start":
            self.writer.start(event.get("generation_id") or "")
            return [self.writer.chunk({"content": ""})]
        if kind == "text-generation" and event.get("text"):
            return [self.writer.chunk({"content": event["text"]})]
        if kind == "stream-end":
            self.ended = True
            self.state.usage = reported_usage(billed_usage(event.get("response")))
            return [self.writer.chunk({}, finish_reason(event.get("finish_reason")))]
        return []  # search results, citations: nothing an OpenAI client reads

    def finish(self) -> list[bytes]:
        if not self.ended:
            raise UpstreamFailed(UpstreamFailure(502, "cohere stream ended before stream-end", "upstream_error"))
        return []
