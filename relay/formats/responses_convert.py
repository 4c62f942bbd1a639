"""OpenAI Responses <-> OpenAI chat, for Responses clients (Codex CLI, the openai SDK's `responses`) on channels
that do not speak Responses.

Plain functions on decoded JSON: a Responses request becomes the OpenAI chat body every adaptor takes
(`to_chat`), and the chat answer becomes a `response` object (`from_chat`) or, chunk by chunk, the Responses
event stream (`ResponsesStream`).

Decisions worth knowing:
- The gateway keeps no conversation state: `previous_response_id`, `conversation`, a stored `prompt`, an
  `item_reference` and `background` are refused, `store` is not forwarded, and a converted response says
  `"store": false` (it cannot be retrieved later).
- Reasoning items in the input are dropped: their encrypted content means nothing to another provider. The
  model's reasoning comes back as a reasoning item with one `summary_text`, which the SDK and Codex show.
- Files are read from the request only: an `input_file` with inline `file_data` becomes a chat `file` part,
  while a `file_id` or `file_url` (OpenAI's file storage) is refused.
- Several text parts become one string, separated as the Messages conversion separates its text blocks: every
  OpenAI-compatible upstream takes a string, not all take parts.
- A chat tool message holds text only: images and files in a function call's output follow the run of outputs
  in a user message, so that every tool call is still answered right after the assistant message making it.
- Function calls join the assistant message just before them: chat's form of "text, then tool calls".
"""

import uuid

from relay.adaptors.base import TextParts, Usage
from relay.formats.anthropic_convert import (
    BLOCK_SEPARATOR,
    chunk_parts,
    converted_tools,
    first_choice,
    invalid,
    is_integer,
    is_number,
    json_text,
    not_supported,
    object_or_empty,
    plain_when_text,
    reasoning_of,
    sse_frame,
    stream_flag,
    text_or,
)
from relay.tokenizer import Measure

CHAT_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TEXT_PARTS = {"input_text": "text", "output_text": "text", "refusal": "refusal"}  # part type -> its text field
IMAGE_DETAILS = ("auto", "low", "high")
TOOL_CHOICES = ("auto", "none", "required")
NO_STATE = "the gateway keeps no conversation state for a channel that does not speak the Responses API"
STATEFUL_FIELDS = {
    "previous_response_id": f"previous_response_id is not supported: {NO_STATE}; send the whole conversation in input",
    "conversation": f"conversation is not supported: {NO_STATE}; send the whole conversation in input",
    "prompt": "a stored prompt (prompt.id) lives on OpenAI's servers; send instructions and input instead",
}
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
COMPLETED, INCOMPLETE, IN_PROGRESS = "completed", "incomplete", "in_progress"
MESSAGE_OVERHEAD = 3  # tokens per message, as relay.tokenizer.count_messages counts them
REPLY_PRIMER = 3


# --- request: Responses -> OpenAI chat ---


def to_chat(body: dict) -> dict:
    """A Responses request body (decoded, `model` present) -> an OpenAI chat completions body. Raises
    RelayError 400 naming the field (`param`) for a shape Responses does not allow or this channel cannot take."""
    refuse_server_state(body)
    messages = instruction_messages(body) + input_messages(body.get("input"))
    if not messages:
        raise invalid("input must be a non-empty string or list of items", "input")
    chat: dict = {"model": body["model"], "messages": messages}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = max_output_tokens(body)
    if "stream" in body:
        chat["stream"] = stream_flag(body)
        if chat["stream"]:
            chat["stream_options"] = {"include_usage": True}
    chat.update({name: body[name] for name in ("temperature", "top_p") if is_number(body.get(name))})
    chat.update(tool_fields(body))
    optional = {
        "reasoning_effort": reasoning_effort(body.get("reasoning")),
        "response_format": response_format(body.get("text")),
        "user": text_or(body.get("user"), "") or text_or(body.get("safety_identifier"), ""),
        "prompt_cache_key": text_or(body.get("prompt_cache_key"), ""),
    }
    chat.update({name: value for name, value in optional.items() if value})
    return chat


def refuse_server_state(body: dict) -> None:
    for name, message in STATEFUL_FIELDS.items():
        if body.get(name) is not None:
            raise invalid(message, name)
    if body.get("background") is True:
        raise not_supported("background: true (a response run and stored by the upstream)", "background")


def max_output_tokens(body: dict) -> int:
    value = body["max_output_tokens"]
    if not is_integer(value) or value < 1:
        raise invalid("max_output_tokens must be a positive integer", "max_output_tokens")
    return value


def instruction_messages(body: dict) -> list[dict]:
    instructions = body.get("instructions")
    if instructions is None:
        return []
    if not isinstance(instructions, str):
        raise invalid("instructions must be a string", "instructions")
    return [{"role": "system", "content": instructions}] if instructions else []


def input_messages(items: object) -> list[dict]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}] if items else []
    if not isinstance(items, list):
        raise invalid("input must be a string or a list of items", "input")
    messages: list[dict] = []
    attachments: list[dict] = []  # images and files of function call outputs, for a user message after them
    for position, item in enumerate(items):
        param = f"input.{position}"
        kind = item_type(item, param)
        if kind != "function_call_output":
            messages += attachment_messages(attachments)
            attachments = []
        if kind == "message":
            messages.append(chat_message(item, param))
        elif kind == "function_call":
            add_tool_call(messages, tool_call(item, param))
        elif kind == "function_call_output":
            text, parts = tool_output(item.get("output"), f"{param}.output")
            messages.append({"role": "tool", "tool_call_id": call_id_of(item, param), "content": text})
            attachments += parts
        elif kind == "item_reference":
            raise invalid(f"item_reference is not supported: {NO_STATE}; send the items themselves", param)
        elif kind != "reasoning":
            raise not_supported(f"input item type {kind!r}", f"{param}.type")
    return messages + attachment_messages(attachments)


def item_type(item: object, param: str) -> str:
    """An item's type; a message may leave it out."""
    if not isinstance(item, dict):
        raise invalid("an input item must be an object", param)
    kind = item.get("type", "message" if "role" in item else None)
    if not isinstance(kind, str):
        raise invalid("an input item needs a type (or a role, for a message)", param)
    return kind


def attachment_messages(parts: list[dict]) -> list[dict]:
    return [{"role": "user", "content": parts}] if parts else []


def chat_message(item: dict, param: str) -> dict:
    role = item.get("role")
    if role not in CHAT_ROLES:
        raise invalid(f"unknown role {role!r}: messages take user, assistant, system or developer", f"{param}.role")
    content, where = item.get("content"), f"{param}.content"
    if role == "user":
        return {"role": "user", "content": user_content(content, where)}
    return {"role": CHAT_ROLES[role], "content": text_content(content, where)}


def user_content(content: object, param: str) -> str | list[dict]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid("content must be a string or a list of content parts", param)
    return plain_when_text([user_part(part, f"{param}.{position}") for position, part in enumerate(content)])


def text_content(content: object, param: str) -> str:
    """The content of a system, developer or assistant message, which chat takes as text."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid("content must be a string or a list of text parts", param)
    return BLOCK_SEPARATOR.join(part_text(part, f"{param}.{position}") for position, part in enumerate(content))


def part_text(part: object, param: str) -> str:
    text = text_of(part)
    if text is None:
        raise invalid("expected a text part: input_text, output_text or refusal", param)
    return text


def text_of(part: object) -> str | None:
    """The text of a text part (input_text, output_text, refusal); None for another part."""
    kind = part.get("type") if isinstance(part, dict) else None
    text = part.get(TEXT_PARTS[kind]) if isinstance(part, dict) and kind in TEXT_PARTS else None
    return text if isinstance(text, str) else None


def user_part(part: object, param: str) -> dict:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in TEXT_PARTS:
        return {"type": "text", "text": part_text(part, param)}
    if kind == "input_image" and isinstance(part, dict):
        return image_part(part, param)
    if kind == "input_file" and isinstance(part, dict):
        return file_part(part, param)
    raise not_supported(f"content part type {kind!r}", param)


def image_part(part: dict, param: str) -> dict:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        if part.get("file_id") is not None:
            raise not_supported("an image by file_id (OpenAI's file storage); send image_url", f"{param}.file_id")
        raise invalid("an input_image needs an image_url (a URL or a data URL)", f"{param}.image_url")
    image: dict = {"url": url}
    if part.get("detail") in IMAGE_DETAILS:
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def file_part(part: dict, param: str) -> dict:
    data = part.get("file_data")
    if not isinstance(data, str) or not data:
        stored = "file_id" if part.get("file_id") is not None else "file_url"
        raise not_supported(f"an input_file by {stored}; send the file inline in file_data", f"{param}.{stored}")
    filename = text_or(part.get("filename"), "document.pdf")
    return {"type": "file", "file": {"filename": filename, "file_data": data}}


def call_id_of(item: dict, param: str) -> str:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid(f"a {item['type']} item needs a call_id", f"{param}.call_id")
    return call_id


def tool_call(item: dict, param: str) -> dict:
    name, arguments = item.get("name"), item.get("arguments", "{}")
    if not isinstance(name, str) or not name:
        raise invalid("a function_call item needs a name", f"{param}.name")
    if not isinstance(arguments, str):
        raise invalid("a function_call item's arguments must be a JSON string", f"{param}.arguments")
    function = {"name": name, "arguments": arguments}
    return {"id": call_id_of(item, param), "type": "function", "function": function}


def add_tool_call(messages: list[dict], call: dict) -> None:
    last = messages[-1] if messages else {}
    if last.get("role") == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def tool_output(output: object, param: str) -> tuple[str, list[dict]]:
    """(the tool message's text, the image and file parts for a user message after the outputs)."""
    if isinstance(output, str):
        return output, []
    if not isinstance(output, list):
        raise invalid("a function_call_output's output must be a string or a list of content parts", param)
    texts: list[str] = []
    attachments: list[dict] = []
    for position, part in enumerate(output):
        converted = user_part(part, f"{param}.{position}")
        if converted["type"] == "text":
            texts.append(converted["text"])
        else:
            attachments.append(converted)
    return BLOCK_SEPARATOR.join(texts), attachments


def tool_fields(body: dict) -> dict:
    """`tools`, `tool_choice` and `parallel_tool_calls`; OpenAI refuses the last two without tools."""
    tools = converted_tools(body, function_tool)
    if not tools:
        return {}
    fields: dict = {"tools": tools}
    if body.get("tool_choice") is not None:
        fields["tool_choice"] = chat_tool_choice(body["tool_choice"])
    if isinstance(body.get("parallel_tool_calls"), bool):
        fields["parallel_tool_calls"] = body["parallel_tool_calls"]
    return fields


def function_tool(tool: object, param: str) -> dict:
    """A flat Responses function tool -> chat's nested one."""
    if not isinstance(tool, dict):
        raise invalid("a tool must be an object", param)
    if tool.get("type") != "function":
        message = f"tools of type {tool.get('type')!r} are not supported on this channel: it takes function tools only"
        raise invalid(message, "tools")
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise invalid("a function tool needs a name", f"{param}.name")
    parameters = tool.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        raise invalid("a function tool's parameters must be a JSON Schema object", f"{param}.parameters")
    function: dict = {"name": name, "parameters": parameters}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    if isinstance(tool.get("strict"), bool):
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def chat_tool_choice(choice: object) -> str | dict:
    if choice in TOOL_CHOICES:
        return str(choice)
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise invalid('tool_choice must be "auto", "none", "required" or {"type": "function", "name": ...}', "tool_choice")


def reasoning_effort(reasoning: object) -> str | None:
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if effort is not None and not isinstance(effort, str):
        raise invalid("reasoning.effort must be a string", "reasoning.effort")
    return effort


def response_format(text: object) -> dict | None:
    """`text.format` -> chat's `response_format`; plain text needs none."""
    form = text.get("format") if isinstance(text, dict) else None
    kind = form.get("type") if isinstance(form, dict) else None
    if form is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema" or not isinstance(form, dict):
        raise invalid('text.format.type must be "text", "json_object" or "json_schema"', "text.format")
    if not isinstance(form.get("name"), str) or not isinstance(form.get("schema"), dict):
        raise invalid("a json_schema format needs a name and a schema object", "text.format")
    schema = {name: form[name] for name in ("name", "schema", "strict", "description") if name in form}
    return {"type": "json_schema", "json_schema": schema}


# --- answer: OpenAI chat -> a response object ---


def from_chat(answer: dict, request: dict, response_id: str, created_at: int, usage: Usage) -> dict:
    """An OpenAI chat completion -> the `response` object `response_id` for the client's `request`, carrying
    `usage` (what was billed)."""
    choice = first_choice(answer)
    finish_reason = choice.get("finish_reason")
    output = answer_items(object_or_empty(choice.get("message")))
    if output and finish_reason in INCOMPLETE_REASONS:
        output[-1]["status"] = INCOMPLETE  # the item being written when the answer was cut
    return ended(response_object(request, response_id, created_at, output, COMPLETED), finish_reason, usage)


def answer_items(message: dict) -> list[dict]:
    items: list[dict] = []
    reasoning = reasoning_of(message)
    if reasoning:
        items.append(reasoning_item(new_id("rs"), [summary_part(reasoning)], COMPLETED))
    content, refusal = text_or(message.get("content"), ""), text_or(message.get("refusal"), "")
    parts = ([text_part(content)] if content else []) + ([refusal_part(refusal)] if refusal else [])
    if parts:
        items.append(message_item(new_id("msg"), parts, COMPLETED))
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            call_id = text_or(call.get("id"), new_id("call"))
            arguments = text_or(function.get("arguments"), "{}")
            items.append(function_call_item(call_id, text_or(function.get("name"), ""), arguments, COMPLETED))
    return items


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def reasoning_item(item_id: str, summary: list[dict], status: str) -> dict:
    return {"type": "reasoning", "id": item_id, "summary": summary, "status": status}


def message_item(item_id: str, content: list[dict], status: str) -> dict:
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def function_call_item(call_id: str, name: str, arguments: str, status: str) -> dict:
    return {
        "type": "function_call",
        "id": new_id("fc"),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def summary_part(text: str) -> dict:
    return {"type": "summary_text", "text": text}


def text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(text: str) -> dict:
    return {"type": "refusal", "refusal": text}


def response_object(request: dict, response_id: str, created_at: int, output: list[dict], status: str) -> dict:
    """The response, echoing the request's settings as OpenAI does."""
    tool_choice = request.get("tool_choice")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "model": request.get("model"),
        "output": output,
        "error": None,
        "incomplete_details": None,
        "usage": None,
        "instructions": request.get("instructions"),
        "tools": request.get("tools") or [],
        "tool_choice": "auto" if tool_choice is None else tool_choice,
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "temperature": request.get("temperature") if is_number(request.get("temperature")) else None,
        "top_p": request.get("top_p") if is_number(request.get("top_p")) else None,
        "max_output_tokens": request.get("max_output_tokens"),
        "metadata": request.get("metadata") or {},
        "reasoning": request.get("reasoning"),
        "text": request.get("text") or {"format": {"type": "text"}},
        "previous_response_id": None,
        "store": False,  # not stored anywhere: see the module's docstring
    }


def ended(response: dict, finish_reason: object, usage: Usage) -> dict:
    """`response` as it ends: completed, or incomplete when the answer was cut, with the billed usage."""
    reason = INCOMPLETE_REASONS.get(finish_reason) if isinstance(finish_reason, str) else None
    response["status"] = INCOMPLETE if reason else COMPLETED
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["usage"] = usage_object(usage)
    return response


def usage_object(usage: Usage) -> dict:
    """The Responses usage: `input_tokens` counts every input token, cached ones included."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


# --- stream: OpenAI chunks -> Responses events ---

REASONING, TEXT, REFUSAL = "reasoning", "output_text", "refusal"
# an open text's kind -> (its events' prefix, its part events' prefix, the field numbering its part)
TEXT_EVENTS = {
    REASONING: ("response.reasoning_summary_text", "response.reasoning_summary_part", "summary_index"),
    TEXT: ("response.output_text", "response.content_part", "content_index"),
    REFUSAL: ("response.refusal", "response.content_part", "content_index"),
}
TEXT_PART_MAKERS = {REASONING: summary_part, TEXT: text_part, REFUSAL: refusal_part}


class ResponsesStream:
    """The Responses grammar: response.created, response.in_progress, then each output item in turn
    (output_item.added, its part and deltas, their .done events, output_item.done; `output_index` counts from
    0), then response.completed or response.incomplete, or response.failed when the upstream broke off. Every
    event carries the next `sequence_number`.

    One item is open at a time; a change of kind (reasoning, text, refusal, another tool call) closes it.
    Providers stream tool calls one after another; a late fragment of an earlier call still goes to that
    call's output_index, and the final response carries the call's whole arguments.
    """

    def __init__(self, request: dict, response_id: str, created_at: int) -> None:
        """`request`: the client's Responses request, echoed in the response object."""
        self.request = request
        self.response_id = response_id
        self.created_at = created_at
        self.sequence = 0
        self.output: list[dict] = []  # the items so far; an open item is the last
        self.open_kind: object = None  # REASONING, TEXT, REFUSAL, ("call", chat tool call index) or None
        self.pieces: list[str] = []  # the open text's deltas
        self.calls: dict[object, int] = {}  # chat tool call index -> output index
        self.arguments: dict[int, list[str]] = {}  # output index of a call -> its argument fragments
        self.finish_reason: str | None = None
        self.reported_usage: Usage | None = None
        self.finished = False
        self.parts = TextParts()

    def start(self) -> list[bytes]:
        """response.created and response.in_progress, with no output yet."""
        response = self.snapshot(IN_PROGRESS)
        return [
            self.event("response.created", response=response),
            self.event("response.in_progress", response=response),
        ]

    def feed(self, chunk: dict) -> list[bytes]:
        """The events for one OpenAI chunk; its finish_reason and usage are kept for `finish`."""
        if self.finished:
            return []
        delta, finish_reason, usage = chunk_parts(chunk)
        self.finish_reason = finish_reason or self.finish_reason
        self.reported_usage = usage or self.reported_usage
        frames = self.text_frames(REASONING, reasoning_of(delta))
        frames += self.text_frames(TEXT, text_or(delta.get("content"), ""))
        frames += self.text_frames(REFUSAL, text_or(delta.get("refusal"), ""))
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(call, dict):
                frames += self.call_frames(call, position)
        return frames

    def text_frames(self, kind: str, text: str) -> list[bytes]:
        if not text:
            return []
        frames = [] if self.open_kind == kind else self.open_text(kind)
        self.pieces.append(text)
        self.parts.append(text)
        logprobs: dict = {"logprobs": []} if kind == TEXT else {}
        return frames + [self.event(f"{TEXT_EVENTS[kind][0]}.delta", **self.text_place(kind), delta=text, **logprobs)]

    def open_text(self, kind: str) -> list[bytes]:
        frames = self.close(COMPLETED)
        if kind == REASONING:
            frames.append(self.add_item(reasoning_item(new_id("rs"), [], IN_PROGRESS)))
        else:
            frames.append(self.add_item(message_item(new_id("msg"), [], IN_PROGRESS)))
        self.open_kind = kind
        part = TEXT_PART_MAKERS[kind]("")
        return frames + [self.event(f"{TEXT_EVENTS[kind][1]}.added", **self.text_place(kind), part=part)]

    def text_place(self, kind: str) -> dict:
        """Where the open text is: its item, output index and part number."""
        return {"item_id": self.output[-1]["id"], "output_index": len(self.output) - 1, TEXT_EVENTS[kind][2]: 0}

    def call_frames(self, call: dict, position: int) -> list[bytes]:
        call_index = call.get("index", position)
        function = object_or_empty(call.get("function"))
        frames: list[bytes] = []
        if call_index not in self.calls:
            frames += self.close(COMPLETED)
            name = text_or(function.get("name"), "")
            frames.append(
                self.add_item(function_call_item(text_or(call.get("id"), new_id("call")), name, "", IN_PROGRESS))
            )
            self.open_kind = ("call", call_index)
            self.calls[call_index] = len(self.output) - 1
            self.arguments[len(self.output) - 1] = []
            self.parts.append(name)
        fragment = function.get("arguments")
        if isinstance(fragment, str) and fragment:
            index = self.calls[call_index]
            self.arguments[index].append(fragment)
            self.parts.append(fragment)
            place = {"item_id": self.output[index]["id"], "output_index": index}
            frames.append(self.event("response.function_call_arguments.delta", **place, delta=fragment))
        return frames

    def add_item(self, item: dict) -> bytes:
        self.output.append(item)
        return self.event("response.output_item.added", output_index=len(self.output) - 1, item=item)

    def close(self, status: str) -> list[bytes]:
        """The events that end the open item, which ends as `status`."""
        kind, self.open_kind = self.open_kind, None
        if kind is None:
            return []
        item = self.output[-1]
        item["status"] = status
        frames = self.close_call(item) if isinstance(kind, tuple) else self.close_text(str(kind), item)
        return frames + [self.event("response.output_item.done", output_index=len(self.output) - 1, item=item)]

    def close_text(self, kind: str, item: dict) -> list[bytes]:
        part = TEXT_PART_MAKERS[kind]("".join(self.pieces))
        self.pieces = []
        item["summary" if kind == REASONING else "content"] = [part]
        place = self.text_place(kind)
        done = {name: part[name] for name in ("text", "refusal", "logprobs") if name in part}
        text_events, part_events, _ = TEXT_EVENTS[kind]
        return [
            self.event(f"{text_events}.done", **place, **done),
            self.event(f"{part_events}.done", **place, part=part),
        ]

    def close_call(self, item: dict) -> list[bytes]:
        item["arguments"] = "".join(self.arguments[len(self.output) - 1])
        place = {"item_id": item["id"], "output_index": len(self.output) - 1}
        return [self.event("response.function_call_arguments.done", **place, arguments=item["arguments"])]

    def finish(self, usage: Usage | None = None) -> list[bytes]:
        """Close the open item, then response.completed, or response.incomplete when the answer was cut, with
        the whole response and `usage` (else the chunks' usage, else zeros). A second call sends nothing."""
        if self.finished:
            return []
        self.finished = True
        frames = self.close(INCOMPLETE if self.finish_reason in INCOMPLETE_REASONS else COMPLETED)
        for index, fragments in self.arguments.items():  # a fragment may have come after its call's done event
            self.output[index]["arguments"] = "".join(fragments)
        response = ended(self.snapshot(COMPLETED), self.finish_reason, usage or self.reported_usage or Usage())
        return frames + [self.event(f"response.{response['status']}", response=response)]

    def failed(self, message: str) -> list[bytes]:
        """response.failed with a server_error: the SDKs end the stream on it. Nothing is sent after it."""
        if self.finished:
            return []
        self.finished = True
        response = self.snapshot("failed")
        response["error"] = {"code": "server_error", "message": message}
        return [self.event("response.failed", response=response)]

    def snapshot(self, status: str) -> dict:
        return response_object(self.request, self.response_id, self.created_at, self.output, status)

    def event(self, kind: str, **fields: object) -> bytes:
        self.sequence += 1
        return sse_frame({"type": kind, "sequence_number": self.sequence - 1, **fields})

    @property
    def text(self) -> str:
        """Every reasoning, text, refusal, tool name and argument streamed so far, for counting when usage is
        missing."""
        return str(self.parts)


# --- counting the prompt ---


def prompt_tokens(body: dict, measure: Measure) -> int:
    """The Responses request's prompt by `measure` (tokenizer.Tokens, or tokenizer.utf8_bytes for the bound):
    instructions, every item's texts, function calls and their outputs, and the tool definitions, with a
    per-message overhead as relay.tokenizer.count_messages counts. Images and files are left to the caller."""
    total = REPLY_PRIMER
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        total += MESSAGE_OVERHEAD + measure(instructions)
    items = body.get("input")
    for item in [{"content": items}] if isinstance(items, str) else items if isinstance(items, list) else ():
        if isinstance(item, dict) and item.get("type") != "reasoning":
            total += MESSAGE_OVERHEAD + sum(measure(text) for text in item_texts(item))
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        total += measure(json_text(tools))
    return total


def item_texts(item: dict) -> list[str]:
    """The texts a model reads in an input item: a message's text parts, a function call's name and
    arguments, a function call output's text."""
    if item.get("type") == "function_call":
        return [text_or(item.get("name"), ""), text_or(item.get("arguments"), "")]
    content = item.get("output") if item.get("type") == "function_call_output" else item.get("content")
    if isinstance(content, str):
        return [content]
    texts = [text_of(part) for part in content] if isinstance(content, list) else []
    return [text for text in texts if text is not None]
