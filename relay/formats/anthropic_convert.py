"""Anthropic Messages <-> OpenAI chat, for Messages clients on channels that do not speak Messages.

Plain functions on decoded JSON: a Messages request becomes the OpenAI chat body every adaptor takes
(`to_chat`), and the OpenAI answer becomes a Messages answer (`from_chat`) or, chunk by chunk, Anthropic's
stream events (`MessagesStream`).

Decisions worth knowing:
- OpenAI wants every assistant message with tool calls followed by the tool messages that answer them, so a
  user turn's `tool_result` blocks become tool messages placed before the rest of that turn's content.
  An OpenAI tool message holds text only: images in a tool result follow in a user message.
- Thinking blocks in the history are dropped: their signatures mean nothing to another provider.
- `metadata.user_id` becomes `user`; OpenAI takes at most 64 characters there, and Claude Code sends
  longer ids, so a longer one is sent as its SHA-256 (still one stable id per user).
- OpenAI does not say which stop sequence matched, so a stop is always `end_turn`.
"""

import hashlib
import uuid
from collections.abc import Callable
from typing import TypeGuard

import orjson

from relay.adaptors.base import TextParts, Usage
from relay.adaptors.openai_format import openai_usage, reasoning_of
from relay.errors import RelayError
from relay.tokenizer import Measure

ROLES = ("user", "assistant")
CUSTOM_TOOL_TYPES = (None, "custom")  # every other tool type is a server tool Anthropic runs itself
HISTORY_ONLY_BLOCKS = ("thinking", "redacted_thinking")
MAX_USER_ID_CHARS = 64
BLOCK_SEPARATOR = "\n\n"  # between the texts of blocks that become one OpenAI string
# Anthropic's thinking budget -> OpenAI's effort: (budget below, effort)
EFFORT_BY_BUDGET = ((4096, "low"), (16384, "medium"))
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
MESSAGE_OVERHEAD = 3  # tokens per message, as relay.tokenizer.count_messages counts them
REPLY_PRIMER = 3


def invalid(message: str, param: str | None = None) -> RelayError:
    return RelayError(400, message, "invalid_request_error", param=param)


def not_supported(what: str, param: str) -> RelayError:
    return invalid(f"{what} is not supported on this channel", param)


# --- request: Messages -> OpenAI chat ---


def to_chat(body: dict) -> dict:
    """A Messages request body (decoded, `model` present) -> an OpenAI chat completions body. Raises
    RelayError 400 naming the field (`param`) for a shape Messages does not allow or this channel cannot take."""
    chat: dict = {"model": body["model"], "messages": system_messages(body) + chat_messages(body)}
    chat["max_tokens"] = max_tokens(body)
    if "stream" in body:
        chat["stream"] = stream_flag(body)
        if chat["stream"]:
            chat["stream_options"] = {"include_usage": True}
    chat.update(sampling_fields(body))
    chat.update(tool_fields(body))
    optional = {"reasoning_effort": reasoning_effort(body), "user": end_user(body.get("metadata"))}
    chat.update({name: value for name, value in optional.items() if value})
    return chat


def max_tokens(body: dict) -> int:
    value = body.get("max_tokens")
    if not is_integer(value) or value < 1:
        raise invalid("max_tokens is required and must be a positive integer", "max_tokens")
    return value


def is_integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def stream_flag(body: dict) -> bool:
    if not isinstance(body["stream"], bool):
        raise invalid("stream must be true or false", "stream")
    return body["stream"]


def system_messages(body: dict) -> list[dict]:
    system = body.get("system")
    if system is None:
        return []
    if isinstance(system, str):
        text = system
    elif isinstance(system, list):
        text = BLOCK_SEPARATOR.join(block_text(block, f"system.{position}") for position, block in enumerate(system))
    else:
        raise invalid("system must be a string or a list of text blocks", "system")
    return [{"role": "system", "content": text}] if text else []


def block_text(block: object, param: str) -> str:
    """The text of a block that must be a text block (system blocks, text in a tool result)."""
    if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
        raise invalid('expected a text block: {"type": "text", "text": "..."}', param)
    return block["text"]


def chat_messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty list of messages", "messages")
    converted: list[dict] = []
    for position, message in enumerate(messages):
        converted += turn_messages(message, f"messages.{position}")
    return converted


def turn_messages(message: object, param: str) -> list[dict]:
    if not isinstance(message, dict):
        raise invalid("a message must be an object with a role and content", param)
    role = message.get("role")
    if role not in ROLES:
        raise invalid(f"unknown role {role!r}: messages take 'user' or 'assistant'", f"{param}.role")
    blocks = content_blocks(message.get("content"), f"{param}.content")
    return user_messages(blocks, param) if role == "user" else assistant_messages(blocks, param)


def content_blocks(content: object, param: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid("content must be a string or a list of content blocks", param)
    for position, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise invalid("a content block must be an object with a type", f"{param}.{position}")
    return content


def user_messages(blocks: list[dict], param: str) -> list[dict]:
    """A user turn: tool messages first (they answer the assistant turn just before), then the rest."""
    tool_messages: list[dict] = []
    parts: list[dict] = []
    for position, block in enumerate(blocks):
        where = f"{param}.content.{position}"
        if block["type"] == "tool_result":
            text, images = tool_result_content(block, where)
            tool_messages.append({"role": "tool", "tool_call_id": tool_use_id(block, where), "content": text})
            parts += images
        elif block["type"] not in HISTORY_ONLY_BLOCKS:
            parts.append(user_part(block, where))
    return tool_messages + ([{"role": "user", "content": plain_when_text(parts)}] if parts else [])


def plain_when_text(parts: list[dict]) -> str | list[dict]:
    """Text-only content as one string: every OpenAI-compatible upstream takes that, not all take parts."""
    if all(part["type"] == "text" for part in parts):
        return BLOCK_SEPARATOR.join(part["text"] for part in parts)
    return parts


def user_part(block: dict, param: str) -> dict:
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": block_text(block, param)}
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": image_url(block, param)}}
    if kind == "document":
        return document_part(block, param)
    raise not_supported(f"content block type {kind!r}", param)


def source_of(block: dict, param: str) -> dict:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"a {block['type']} block needs a source object", f"{param}.source")
    return source


def data_url(source: dict, param: str) -> str:
    media_type, data = source.get("media_type"), source.get("data")
    if not isinstance(media_type, str) or not media_type or not isinstance(data, str) or not data:
        raise invalid("a base64 source needs media_type and data strings", f"{param}.source")
    return f"data:{media_type};base64,{data}"


def image_url(block: dict, param: str) -> str:
    source = source_of(block, param)
    if source.get("type") == "base64":
        return data_url(source, param)
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return source["url"]
    raise not_supported(f"an image source of type {source.get('type')!r}", f"{param}.source")


def document_part(block: dict, param: str) -> dict:
    source = source_of(block, param)
    if source.get("type") == "base64":
        title = block.get("title") if isinstance(block.get("title"), str) else ""
        return {"type": "file", "file": {"filename": title or "document.pdf", "file_data": data_url(source, param)}}
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": source["data"]}
    raise not_supported(f"a document source of type {source.get('type')!r}", f"{param}.source")


def tool_use_id(block: dict, param: str) -> str:
    value = block.get("tool_use_id")
    if not isinstance(value, str) or not value:
        raise invalid("a tool_result block needs the tool_use_id it answers", f"{param}.tool_use_id")
    return value


def tool_result_content(block: dict, param: str) -> tuple[str, list[dict]]:
    """(the tool message's text, image parts for a user message after it)."""
    content = block.get("content", "")
    texts: list[str] = []
    images: list[dict] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for position, item in enumerate(content):
            where = f"{param}.content.{position}"
            if isinstance(item, dict) and item.get("type") == "image":
                images.append({"type": "image_url", "image_url": {"url": image_url(item, where)}})
            else:
                texts.append(block_text(item, where))
    else:
        raise invalid("tool_result content must be a string or a list of text and image blocks", f"{param}.content")
    text = BLOCK_SEPARATOR.join(texts)
    return (f"Error: {text}" if block.get("is_error") is True else text), images


def assistant_messages(blocks: list[dict], param: str) -> list[dict]:
    texts: list[str] = []
    tool_calls: list[dict] = []
    for position, block in enumerate(blocks):
        where = f"{param}.content.{position}"
        if block["type"] == "text":
            texts.append(block_text(block, where))
        elif block["type"] == "tool_use":
            tool_calls.append(tool_call(block, where))
        elif block["type"] not in HISTORY_ONLY_BLOCKS:
            raise not_supported(f"content block type {block['type']!r} in an assistant turn", where)
    text = BLOCK_SEPARATOR.join(texts)
    if not text and not tool_calls:
        return []  # a turn of thinking only: nothing another provider can read
    message: dict = {"role": "assistant", "content": text or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return [message]


def tool_call(block: dict, param: str) -> dict:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise invalid("a tool_use block needs an id and a name", param)
    if not isinstance(arguments, dict):
        raise invalid("a tool_use block's input must be an object", f"{param}.input")
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json_text(arguments)}}


def json_text(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        raise invalid("the request is nested too deeply to convert for this channel") from None


def sampling_fields(body: dict) -> dict:
    fields = {name: body[name] for name in ("temperature", "top_p") if is_number(body.get(name))}
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
            raise invalid("stop_sequences must be a list of strings", "stop_sequences")
        if stops:
            fields["stop"] = stops
    return fields


def tool_fields(body: dict) -> dict:
    """`tools`, `tool_choice` and `parallel_tool_calls`; OpenAI refuses the last two without tools."""
    tools = converted_tools(body, function_tool)
    if not tools:
        return {}
    fields: dict = {"tools": tools}
    choice = body.get("tool_choice")
    if choice is not None:
        fields.update(choice_fields(choice))
    return fields


def converted_tools(body: dict, convert: Callable[[object, str], dict]) -> list[dict]:
    """The request's `tools`, each converted by `convert(tool, param)`."""
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid("tools must be a list of tool definitions", "tools")
    return [convert(tool, f"tools.{position}") for position, tool in enumerate(tools)]


def function_tool(tool: object, param: str) -> dict:
    if not isinstance(tool, dict):
        raise invalid("a tool must be an object", param)
    if tool.get("type") not in CUSTOM_TOOL_TYPES:
        raise not_supported(f"the server tool {tool.get('type')!r}", f"{param}.type")
    name, schema = tool.get("name"), tool.get("input_schema", {"type": "object", "properties": {}})
    if not isinstance(name, str) or not name:
        raise invalid("a tool needs a name", f"{param}.name")
    if not isinstance(schema, dict):
        raise invalid("a tool's input_schema must be a JSON Schema object", f"{param}.input_schema")
    function: dict = {"name": name, "parameters": schema}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def choice_fields(choice: object) -> dict:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool" and isinstance(choice, dict) and isinstance(choice.get("name"), str):
        fields: dict = {"tool_choice": {"type": "function", "function": {"name": choice["name"]}}}
    elif kind in TOOL_CHOICES:
        fields = {"tool_choice": TOOL_CHOICES[str(kind)]}
    else:
        raise invalid('tool_choice must be {"type": "auto" | "any" | "none" | "tool"}', "tool_choice")
    if isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True:
        fields["parallel_tool_calls"] = False
    return fields


def reasoning_effort(body: dict) -> str | None:
    """From a manual thinking budget, or else from `output_config.effort` (which adaptive thinking uses)."""
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not is_integer(budget):
            raise invalid("thinking.budget_tokens must be an integer", "thinking.budget_tokens")
        return next((effort for below, effort in EFFORT_BY_BUDGET if budget < below), "high")
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    return EFFORTS.get(effort) if isinstance(effort, str) else None


def end_user(metadata: object) -> str | None:
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user_id, str) or not user_id:
        return None
    if len(user_id) <= MAX_USER_ID_CHARS:
        return user_id
    return hashlib.sha256(user_id.encode()).hexdigest()


# --- answer: OpenAI chat -> Messages ---


def from_chat(answer: dict, model: str, message_id: str) -> dict:
    """An OpenAI chat completion -> a Messages answer named `message_id`, for `model`."""
    choice = first_choice(answer)
    message = object_or_empty(choice.get("message"))
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": answer_blocks(message),
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": usage_object(openai_usage(answer.get("usage")) or Usage()),
    }


def first_choice(answer: dict) -> dict:
    """The first choice of an answer or chunk: a Messages answer has one."""
    choices = answer.get("choices")
    return object_or_empty(choices[0]) if isinstance(choices, list) and choices else {}


def chunk_parts(chunk: dict) -> tuple[dict, str | None, Usage | None]:
    """A stream chunk's delta (of its first choice), its finish_reason and the usage it reports, if any."""
    choice = first_choice(chunk)
    finish_reason = choice.get("finish_reason")
    usage = openai_usage(chunk.get("usage"))
    return object_or_empty(choice.get("delta")), finish_reason if isinstance(finish_reason, str) else None, usage


def object_or_empty(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def answer_blocks(message: dict) -> list[dict]:
    blocks: list[dict] = []
    reasoning = reasoning_of(message)
    if reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    if isinstance(message.get("content"), str) and message["content"]:
        blocks.append({"type": "text", "text": message["content"]})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            blocks.append(tool_use_block(call, function))
    return blocks


def tool_use_block(call: dict, function: dict) -> dict:
    return {
        "type": "tool_use",
        "id": text_or(call.get("id"), new_tool_use_id()),
        "name": text_or(function.get("name"), ""),
        "input": parsed_arguments(function.get("arguments")),
    }


def text_or(value: object, default: str) -> str:
    return value if isinstance(value, str) and value else default


def new_tool_use_id() -> str:
    return f"toolu_{uuid.uuid4().hex[:24]}"


def parsed_arguments(arguments: object) -> dict:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        return {}  # the model wrote broken JSON; Anthropic's `input` is an object regardless
    return parsed if isinstance(parsed, dict) else {}


def stop_reason(finish_reason: str | None) -> str:
    """OpenAI's finish_reason -> Anthropic's stop_reason."""
    return STOP_REASONS.get(finish_reason or "", "end_turn")


def usage_object(usage: Usage) -> dict:
    """Anthropic's usage: its `input_tokens` leave out the cache reads and writes, which have their own counts."""
    return {
        "input_tokens": usage.uncached_prompt_tokens,
        "cache_creation_input_tokens": usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
        },
        "output_tokens": usage.completion_tokens,
    }


# --- stream: OpenAI chunks -> Anthropic events ---


def sse_frame(data: dict) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessagesStream:
    """Anthropic's grammar: message_start, ping, then each content block in turn (content_block_start, its
    deltas, content_block_stop, with `index` counting from 0), message_delta, message_stop.

    One block is open at a time; a change of kind (thinking, text, another tool call) closes it. Providers
    stream tool calls one after another; a late fragment of an earlier call still goes to that call's
    block index, where the SDKs accumulate it.
    """

    def __init__(self, model: str, message_id: str, input_tokens: int) -> None:
        """`input_tokens`: the gateway's estimate of the prompt, shown in message_start."""
        self.model = model
        self.message_id = message_id
        self.input_tokens = input_tokens
        self.blocks = 0  # content blocks opened so far
        self.open_block: object = None  # "thinking", "text", ("tool", call index) or None
        self.tool_blocks: dict[object, int] = {}  # OpenAI tool call index -> block index
        self.finish_reason: str | None = None
        self.reported_usage: Usage | None = None
        self.finished = False
        self.parts = TextParts()

    def start(self) -> list[bytes]:
        """message_start (no content yet) and a ping."""
        message: dict = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_object(Usage(prompt_tokens=self.input_tokens, completion_tokens=1)),
        }
        return [sse_frame({"type": "message_start", "message": message}), sse_frame({"type": "ping"})]

    def feed(self, chunk: dict) -> list[bytes]:
        """The frames for one OpenAI chunk; its finish_reason and usage are kept for `finish`."""
        if self.finished:
            return []
        delta, finish_reason, usage = chunk_parts(chunk)
        self.finish_reason = finish_reason or self.finish_reason
        self.reported_usage = usage or self.reported_usage
        frames = self.thinking_frames(reasoning_of(delta))
        if isinstance(delta.get("content"), str) and delta["content"]:
            frames += self.text_frames(delta["content"])
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(call, dict):
                frames += self.tool_frames(call, position)
        return frames

    def thinking_frames(self, thinking: str) -> list[bytes]:
        if not thinking:
            return []
        frames = self.open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        return frames + [self.delta({"type": "thinking_delta", "thinking": thinking}, thinking)]

    def text_frames(self, text: str) -> list[bytes]:
        frames = self.open("text", {"type": "text", "text": ""})
        return frames + [self.delta({"type": "text_delta", "text": text}, text)]

    def tool_frames(self, call: dict, position: int) -> list[bytes]:
        call_index = call.get("index", position)
        function = object_or_empty(call.get("function"))
        frames: list[bytes] = []
        if call_index not in self.tool_blocks:
            name = text_or(function.get("name"), "")
            block = {"type": "tool_use", "id": text_or(call.get("id"), new_tool_use_id()), "name": name, "input": {}}
            frames += self.open(("tool", call_index), block)
            self.tool_blocks[call_index] = self.blocks - 1
            self.parts.append(name)
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            delta = {"type": "input_json_delta", "partial_json": fragment}
            frames.append(self.delta(delta, fragment, self.tool_blocks[call_index]))
        return frames

    def open(self, kind: object, block: dict) -> list[bytes]:
        if self.open_block == kind:
            return []
        frames = self.close()
        self.open_block = kind
        self.blocks += 1
        return frames + [sse_frame({"type": "content_block_start", "index": self.blocks - 1, "content_block": block})]

    def close(self) -> list[bytes]:
        if self.open_block is None:
            return []
        self.open_block = None
        return [sse_frame({"type": "content_block_stop", "index": self.blocks - 1})]

    def delta(self, delta: dict, text: str, index: int | None = None) -> bytes:
        self.parts.append(text)
        block = self.blocks - 1 if index is None else index
        return sse_frame({"type": "content_block_delta", "index": block, "delta": delta})

    def finish(self, usage: Usage | None = None) -> list[bytes]:
        """Close the open block, then message_delta with `usage` (else the chunks' usage, else zeros) and
        message_stop. A second call sends nothing."""
        if self.finished:
            return []
        self.finished = True
        final = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(self.finish_reason), "stop_sequence": None},
            "usage": usage_object(usage or self.reported_usage or Usage()),
        }
        return self.close() + [sse_frame(final), sse_frame({"type": "message_stop"})]

    def error(self, message: str, kind: str = "api_error") -> bytes:
        """An `error` event: the SDKs raise it as an API error."""
        return sse_frame({"type": "error", "error": {"type": kind, "message": message}})

    @property
    def text(self) -> str:
        """Every text, thinking, tool name and argument streamed so far, for counting when usage is missing."""
        return str(self.parts)


# --- counting the prompt ---


def prompt_tokens(body: dict, measure: Measure) -> int:
    """The Messages request's prompt by `measure` (tokenizer.Tokens, or tokenizer.utf8_bytes for the bound):
    system, every message's texts, tool calls and results, and the tool definitions, with a per-message
    overhead as relay.tokenizer.count_messages counts. Images are left to the caller."""
    total = REPLY_PRIMER + measure(system_text(body.get("system")))
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict):
            total += MESSAGE_OVERHEAD + sum(measure(text) for text in block_texts(message.get("content")))
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict):
            shown = {name: tool[name] for name in ("name", "description", "input_schema") if name in tool}
            total += measure(json_text(shown))
    return total


def text_source(source: object) -> bool:
    return isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str)


def system_text(system: object) -> str:
    return system if isinstance(system, str) else BLOCK_SEPARATOR.join(block_texts(system))


def block_texts(content: object) -> list[str]:
    """The texts a model reads in content: text, a tool call's name and input, a tool result's text, a text
    document. Images are counted by the caller."""
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content if isinstance(content, list) else ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            texts.append(text_or(block.get("name"), "") + json_text(block.get("input")))
        elif kind == "tool_result":
            texts += block_texts(block.get("content"))
        elif kind == "document" and text_source(block.get("source")):
            texts.append(block["source"]["data"])
    return texts
