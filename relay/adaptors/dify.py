"""Dify apps (the chat-messages API) behind the OpenAI chat format (spec: others.md section 6).

Decisions worth knowing:
- The channel's app key selects the app; no model name is sent (the channel's models are only labels).
- The latest user message is Dify's `query`. Dify keeps history server-side under a conversation_id that
  OpenAI clients do not have, so every call starts a new conversation. Earlier turns are not dropped: they
  are folded in front of the query as a transcript (`SYSTEM: \n...\n`, `USER: \n...\n`,
  `ASSISTANT: \n...\n`, the format new-api uses), ending with the query as the last `USER:` turn. A lone
  user message is sent as it is, so simple apps see plain input. `inputs` stays empty: its variables are
  the app's own, unknown to the gateway.
- Images of the latest user message with an http URL go as `files` (transfer_method remote_url); images of
  earlier turns are not re-sent. Data URLs are refused with a 400: they need an upload request of their
  own first, which `build_request` (synchronous, on the event loop) cannot make.
- `user` is the request's `user`, else "api-user".
- Stream: message/agent_message -> content; message_end -> a finish chunk and metadata.usage; error -> the
  stream fails with Dify's message. With settings.DIFY_DEBUG, workflow and node events become
  `reasoning_content` lines (`Workflow: <workflow_id>`, `Node: <node_type>`, plus the status once
  finished), keeping the answer text clean; they cost nothing beyond the usage Dify reports. Without
  DIFY_DEBUG they are skipped. A stream that closes before message_end was cut short.
"""

from django.conf import settings

from channels_app.channel_types import new_api
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
    openai_style_error,
)
from relay.adaptors.openai_format import (
    ChunkWriter,
    assistant_message,
    completion_body,
    content_parts,
    content_text,
    image_url_of,
    is_http_url,
    json_or_none,
    last_user_index,
    new_completion_id,
    openai_usage,
    request_json,
    require_chat,
    stream_event,
    unsupported,
    usage_object,
)

SLUG = "dify"
DEFAULT_USER = "api-user"
TRANSCRIPT_ROLES: dict[object, str] = {"system": "SYSTEM", "developer": "SYSTEM", "assistant": "ASSISTANT"}


def query_and_files(message: dict) -> tuple[str, list[dict]]:
    texts, files = [], []
    for part in content_parts(message.get("content")):
        kind = part.get("type")
        if kind == "text":
            texts.append(part.get("text") or "")
        elif kind == "image_url" and is_http_url(url := image_url_of(part)):
            files.append({"type": "image", "transfer_method": "remote_url", "url": url})
        elif kind == "image_url":
            raise unsupported("an inline (data URL) image; send an http(s) URL", SLUG)
        else:
            raise unsupported(f"content part {kind!r}", SLUG)
    return "\n".join(texts), files


def transcript_turn(role: object, text: str) -> str:
    return f"{TRANSCRIPT_ROLES.get(role, 'USER')}: \n{text}\n"


def chat_messages_body(request: RelayRequest) -> dict:
    messages = request.body["messages"]
    current = last_user_index(messages, SLUG)
    query, files = query_and_files(messages[current])
    if len(messages) > 1:
        earlier = [
            transcript_turn(m.get("role"), content_text(m.get("content")))
            for m in messages
            if m is not messages[current]
        ]
        query = "".join(earlier) + transcript_turn("user", query)
    user = request.body.get("user")
    out: dict = {
        "inputs": {},
        "query": query,
        "response_mode": "streaming" if request.stream else "blocking",
        "user": user if isinstance(user, str) and user else DEFAULT_USER,
        "auto_generate_name": False,
    }
    if files:
        out["files"] = files
    return out


def failure_of(status: int, body: object) -> UpstreamFailure | None:
    """Dify's error shape, in HTTP answers and in `error` stream events: {code, message, status}."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str) or not body["message"]:
        return None
    if isinstance(body.get("status"), int) and body["status"] >= 400:
        status = body["status"]
    return UpstreamFailure(status, body["message"], None, body.get("code"))


def progress_line(event: dict) -> str | None:
    kind = event.get("event")
    data = event.get("data")
    if not isinstance(data, dict):
        data = {}
    if kind in ("workflow_started", "workflow_finished"):
        line = f"Workflow: {data.get('workflow_id') or ''}"
    elif kind in ("node_started", "node_finished"):
        line = f"Node: {data.get('node_type') or ''}"
    else:
        return None
    if kind.endswith("_finished") and data.get("status"):
        line += f" {data['status']}"
    return line + "\n"


class DifyAdaptor(Adaptor):
    slug = SLUG
    label = "Dify"
    old_types = (new_api(37),)
    default_base_url = "https://api.dify.ai"

    def build_request(self, request: RelayRequest, channel: ChannelInfo) -> UpstreamRequest:
        require_chat(request, SLUG)
        return UpstreamRequest(
            url=f"{self.base_url(channel).removesuffix('/v1')}/v1/chat-messages",
            headers={"Authorization": f"Bearer {channel.key}", "Content-Type": "application/json"},
            content=request_json(chat_messages_body(request)),
        )

    def convert_response(self, request: RelayRequest, content: bytes) -> tuple[bytes, Usage | None, str]:
        body = load_json(content)
        usage = openai_usage((body.get("metadata") or {}).get("usage"))
        message = assistant_message(body.get("answer") or "", [])
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        shown = usage_object(usage) if usage else None
        answer = completion_body(request, body.get("message_id") or new_completion_id(), [choice], shown)
        return answer, usage, message["content"]

    def stream_converter(self, request: RelayRequest) -> StreamConverter:
        return DifyStream(request)

    def parse_error(self, status: int, content: bytes) -> UpstreamFailure:
        return failure_of(status, json_or_none(content)) or openai_style_error(status, content)


class DifyStream(StreamConverter):
    def __init__(self, request: RelayRequest) -> None:
        super().__init__(request)
        self.writer = ChunkWriter(request, self.state)
        self.debug = settings.DIFY_DEBUG
        self.ended = False

    def feed(self, payload: bytes) -> list[bytes]:
        event = stream_event(payload, SLUG) or {}
        kind = event.get("event")
        self.writer.start(event.get("message_id") or "")
        if kind in ("message", "agent_message"):
            return [self.writer.chunk({"content": event["answer"]})] if event.get("answer") else []
        if kind == "message_end":
            self.ended = True
            self.state.usage = openai_usage((event.get("metadata") or {}).get("usage"))
            return [self.writer.chunk({}, "stop")]
        if kind == "error":
            raise UpstreamFailed(failure_of(502, event) or UpstreamFailure(502, "dify reported an error"))
        line = progress_line(event) if self.debug else None
        return [self.writer.chunk({"reasoning_content": line})] if line else []

    def finish(self) -> list[bytes]:
        if not self.ended:
            raise UpstreamFailed(UpstreamFailure(502, "dify stream ended before message_end", "upstream_error"))
        return []
