"""OpenAI chat <-> Bedrock's Converse API, which serves every chat model on Bedrock in one shape (the Bedrock
Runtime API reference: Converse, ConverseStream; relay.adaptors.bedrock sends it and decodes its streams).

Decisions worth knowing:
- Images and files travel inline only (Converse takes bytes or S3 objects, never a URL): a data URL becomes an
  `image` or `document` block; an http(s) image URL is the client's 400.
- `tool_choice: "none"` has no Converse equivalent: the tools are still declared (a conversation that holds
  tool calls needs them) and the choice left to the model.
- Usage: `inputTokens` is the uncached input; cache reads and writes come beside it, the writes split by
  lifetime in `cacheDetails` (without it, all 5-minute writes, Bedrock's default).
- A stream's usage arrives in its last event (`metadata`), after `messageStop`; a stream cut before it is
  billed by local counting of what was delivered.
"""

from collections.abc import Callable

from relay.adaptors.base import RelayRequest, StreamConverter, UpstreamFailed, UpstreamFailure, Usage, load_json
from relay.adaptors.openai_format import (
    BlockTurns,
    ChunkWriter,
    ToolCallDeltas,
    assistant_message,
    client_tool_calls,
    completion_body,
    completion_text,
    content_parts,
    content_text,
    file_data_url,
    image_url_of,
    new_completion_id,
    openai_tool_call,
    parse_data_url,
    renamed_numeric_fields,
    reported_usage,
    stop_sequences,
    stream_event,
    token_count,
    tool_functions,
    unsupported,
    usage_object,
)
from relay.errors import RelayError

SLUG = "bedrock"
# Converse rejects blank text blocks and conversations that open with an assistant turn.
PLACEHOLDER_TEXT = "..."
IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/plain": "txt",
    "text/csv": "csv",
    "text/html": "html",
    "text/markdown": "md",
}
SAMPLING_FIELDS = {"temperature": "temperature", "top_p": "topP"}
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def finish_reason(stop_reason: object) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


# --- request: OpenAI chat -> Converse ---


def image_block(url: str) -> dict:
    data_url = parse_data_url(url)
    if data_url is None:
        raise RelayError(400, "bedrock channels take images as base64 data URLs only", "unsupported_content")
    if data_url.mime not in IMAGE_FORMATS:
        raise unsupported(f"an image of type {data_url.mime}", SLUG)
    return {"image": {"format": IMAGE_FORMATS[data_url.mime], "source": {"bytes": data_url.data}}}


def document_block(part: dict, number: int) -> dict:
    data_url = file_data_url(part, SLUG)
    if data_url.mime not in DOCUMENT_FORMATS:
        raise unsupported(f"a file of type {data_url.mime}", SLUG)
    # Converse wants a name per document, unique in the request and of letters, digits and a few signs.
    source = {"bytes": data_url.data}
    return {"document": {"format": DOCUMENT_FORMATS[data_url.mime], "name": f"document {number}", "source": source}}


def content_blocks(content: object) -> list[dict]:
    """OpenAI content (string or parts) -> Converse blocks; empty text is dropped."""
    blocks = []
    for part in content_parts(content):
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(image_block(image_url_of(part)))
        elif kind == "file":
            blocks.append(document_block(part, len(blocks) + 1))
        else:
            raise unsupported(f"content part {kind!r}", SLUG)
    return blocks


def tool_use_blocks(message: dict) -> list[dict]:
    return [
        {"toolUse": {"toolUseId": call_id, "name": name, "input": arguments}}
        for call_id, name, arguments in client_tool_calls(message)
    ]


def tool_result_block(message: dict) -> dict:
    text = content_text(message.get("content"))
    result = {"toolUseId": message.get("tool_call_id") or "", "content": [{"text": text or PLACEHOLDER_TEXT}]}
    return {"toolResult": result}


TURNS = BlockTurns(SLUG, content_blocks, tool_use_blocks, tool_result_block, lambda: {"text": PLACEHOLDER_TEXT})


def inference_config(body: dict) -> dict:
    config = renamed_numeric_fields(body, SAMPLING_FIELDS)
    most = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(most, int) and not isinstance(most, bool):
        config["maxTokens"] = most
    stops = stop_sequences(body.get("stop"))
    if stops:
        config["stopSequences"] = stops
    return config


def tool_choice(choice: object) -> dict | None:
    if choice == "required":
        return {"any": {}}
    if choice == "auto":
        return {"auto": {}}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"tool": {"name": choice["function"].get("name") or ""}}
    return None


def tool_config(body: dict) -> dict | None:
    tools = []
    for function in tool_functions(body.get("tools")):
        spec = {
            "name": function.get("name") or "",
            "inputSchema": {"json": function.get("parameters") or {"type": "object", "properties": {}}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        tools.append({"toolSpec": spec})
    if not tools:
        return None
    config: dict = {"tools": tools}
    choice = tool_choice(body.get("tool_choice"))
    if choice is not None:
        config["toolChoice"] = choice
    return config


def converse_body(request: RelayRequest) -> dict:
    """The Converse request for a chat request (the model is in the URL)."""
    body = request.body
    system, turns = TURNS.of(body["messages"])
    out: dict = {"messages": turns}
    if system:
        out["system"] = [{"text": text} for text in system]
    config = inference_config(body)
    if config:
        out["inferenceConfig"] = config
    tools = tool_config(body)
    if tools is not None:
        out["toolConfig"] = tools
    return out


# --- answers: Converse -> OpenAI chat ---


def usage_of(raw: object) -> Usage:
    """Converse's usage in OpenAI's convention (the prompt counts the cache lanes too)."""
    cache_read = token_count(raw, "cacheReadInputTokens")
    written = token_count(raw, "cacheWriteInputTokens")
    details = raw.get("cacheDetails") if isinstance(raw, dict) else None
    lasting_1h = [item for item in details or () if isinstance(item, dict) and item.get("ttl") == "1h"]
    write_1h = sum(token_count(item, "inputTokens") for item in lasting_1h)
    return Usage(
        prompt_tokens=token_count(raw, "inputTokens") + cache_read + written,
        completion_tokens=token_count(raw, "outputTokens"),
        cache_read_tokens=cache_read,
        cache_write_5m_tokens=max(0, written - write_1h),
        cache_write_1h_tokens=write_1h,
    )


def message_of(answer: dict) -> dict:
    output = answer.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    if not isinstance(message, dict):
        message = {}
    texts, reasoning, tool_calls = [], [], []
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            tool_calls.append(openai_tool_call(use.get("toolUseId") or "", use.get("name") or "", use.get("input")))
        elif isinstance(block.get("reasoningContent"), dict):
            reasoning.append((block["reasoningContent"].get("reasoningText") or {}).get("text") or "")
    return assistant_message("".join(texts), tool_calls, "".join(reasoning))


def converse_answer(request: RelayRequest, content: bytes) -> tuple[bytes, Usage | None, str]:
    answer = load_json(content)
    message = message_of(answer)
    usage = usage_of(answer.get("usage"))
    reason = finish_reason(answer.get("stopReason"))
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
    body = completion_body(request, new_completion_id(), [choice], usage_object(usage))
    return body, reported_usage(usage), completion_text(message)


class ConverseStream(StreamConverter):
    """ConverseStream's events, each `{"<event type>": {...}}` (relay.adaptors.bedrock frames them so) -> OpenAI
    chunks; the relay adds the usage chunk and `[DONE]`."""

    def __init__(self, request: RelayRequest) -> None:
        super().__init__(request)
        self.writer = ChunkWriter(request, self.state)
        self.tool_calls = ToolCallDeltas(self.writer)
        self.stopped = False

    def feed(self, payload: bytes) -> list[bytes]:
        event = stream_event(payload, SLUG) or {}
        out = []
        for kind, data in event.items():
            handler = self.HANDLERS.get(kind)
            if handler is not None and isinstance(data, dict):
                out += handler(self, data)
        return out

    def finish(self) -> list[bytes]:
        if not self.stopped:
            raise UpstreamFailed(UpstreamFailure(502, "bedrock stream ended before messageStop", "upstream_error"))
        return []

    def on_message_start(self, event: dict) -> list[bytes]:
        return [self.writer.chunk({"content": ""})]

    def on_block_start(self, event: dict) -> list[bytes]:
        use = (event.get("start") or {}).get("toolUse")
        if not isinstance(use, dict):
            return []
        return self.tool_calls.start(event.get("contentBlockIndex"), use.get("toolUseId") or "", use.get("name") or "")

    def on_block_delta(self, event: dict) -> list[bytes]:
        delta = event.get("delta") or {}
        if isinstance(delta.get("text"), str):
            return [self.writer.chunk({"content": delta["text"]})]
        if isinstance(delta.get("reasoningContent"), dict) and delta["reasoningContent"].get("text"):
            return [self.writer.chunk({"reasoning_content": delta["reasoningContent"]["text"]})]
        return self.tool_calls.arguments(event.get("contentBlockIndex"), (delta.get("toolUse") or {}).get("input"))

    def on_block_stop(self, event: dict) -> list[bytes]:
        return self.tool_calls.stop(event.get("contentBlockIndex"))

    def on_message_stop(self, event: dict) -> list[bytes]:
        self.stopped = True
        return [self.writer.chunk({}, finish_reason(event.get("stopReason")))]

    def on_metadata(self, event: dict) -> list[bytes]:
        self.state.usage = reported_usage(usage_of(event.get("usage")))
        return []

    HANDLERS: dict[str, Callable[["ConverseStream", dict], list[bytes]]] = {
        "messageStart": on_message_start,
        "contentBlockStart": on_block_start,
        "contentBlockDelta": on_block_delta,
        "contentBlockStop": on_block_stop,
        "messageStop": on_message_stop,
        "metadata": on_metadata,
    }
