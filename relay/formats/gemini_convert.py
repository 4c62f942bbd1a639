"""Gemini's native API <-> OpenAI chat and embeddings, for Gemini clients on channels that do not speak it.

Plain functions on decoded JSON: a generateContent request becomes the OpenAI chat body every adaptor takes
(`to_chat`), the OpenAI answer becomes a GenerateContentResponse (`from_chat`) or, chunk by chunk, Gemini's
stream of GenerateContentResponse objects (`GenerateStream`); embedContent and batchEmbedContents become an
embeddings request (`to_embeddings`) and back (`from_embeddings`).

Decisions worth knowing:
- Gemini's function calls carry no ids (unless the client set `id`): each `functionCall` of the history gets a
  minted `call_<hex>` id, and each `functionResponse` answers the oldest unanswered call of its name.
- Thought parts of the history (and parts that carry only a `thoughtSignature`) are dropped, as the Messages
  conversion drops thinking blocks: their signatures mean nothing to another provider. A thought in the answer
  comes from the hub's `reasoning_content`.
- Schemas in `parameters` / `responseSchema` are OpenAPI's subset with upper-case types (`OBJECT`); they are
  given lower-case types for OpenAI. `parametersJsonSchema` / `responseJsonSchema` are JSON Schema already.
- `topK`, `safetySettings` and `responseModalities` have no OpenAI equivalent and are dropped; the built-in
  tools (Google Search, code execution, URL context, ...) and `cachedContent` only work on Gemini: 400.
- A streamed function call is sent whole, once the hub's stream has finished its arguments (at its finish
  reason); the last chunk carries every candidate's finishReason and the billed usageMetadata.
"""

import re
import uuid
from collections import defaultdict

import orjson

from relay.adaptors.base import Usage
from relay.adaptors.openai_format import assistant_message, reasoning_of, tool_arguments
from relay.errors import RelayError
from relay.tokenizer import Measure

ROLES = ("user", "model")
THOUGHT_KEYS = {"thought", "thoughtSignature", "thought_signature"}
FUNCTION_TOOL_KEYS = {"functionDeclarations", "function_declarations"}
TOOL_CHOICES = {"AUTO": "auto", "VALIDATED": "auto", "ANY": "required", "NONE": "none"}
FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}
# Gemini's thinking budget -> OpenAI's effort: (budget below, effort); 0 turns thinking off, -1 is dynamic.
EFFORT_BY_BUDGET = ((1, None), (4096, "low"), (16384, "medium"))
EFFORTS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
JSON_MIME_TYPE = "application/json"
SCHEMA_NAME = "response"
MESSAGE_OVERHEAD = 3  # tokens per message, as relay.tokenizer.count_messages counts them
REPLY_PRIMER = 3
CAMEL_HUMP = re.compile(r"(?<!^)(?=[A-Z])")


def invalid(message: str, param: str | None = None) -> RelayError:
    return RelayError(400, message, "INVALID_ARGUMENT", param=param)


def not_supported(what: str, param: str) -> RelayError:
    return invalid(f"{what} is not supported for this model by this gateway (its channel does not speak Gemini)", param)


def field(body: dict, name: str) -> object:
    """`name` (camelCase) or its snake_case spelling, which Google's JSON parser takes as well."""
    return body[name] if name in body else body.get(CAMEL_HUMP.sub("_", name).lower())


def object_or_empty(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def json_text(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        raise invalid("the request is nested too deeply to convert for this channel") from None


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


# --- request: generateContent -> OpenAI chat ---


def to_chat(body: dict, model: str, stream: bool) -> dict:
    """A generateContent request body (decoded) for `model` -> an OpenAI chat completions body. Raises
    RelayError 400 naming the field for a shape Gemini does not allow or this channel cannot take."""
    if field(body, "cachedContent"):
        raise not_supported("cachedContent", "cachedContent")
    chat: dict = {"model": model, "messages": system_messages(body) + chat_messages(body)}
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    chat.update(generation_fields(object_or_empty(field(body, "generationConfig"))))
    chat.update(tool_fields(body))
    return chat


def system_messages(body: dict) -> list[dict]:
    instruction = field(body, "systemInstruction")
    if instruction is None:
        return []
    if isinstance(instruction, str):
        text = instruction
    elif isinstance(instruction, dict):
        parts = parts_of(instruction)
        text = "\n".join(part_text(part, f"systemInstruction.parts.{n}") for n, part in enumerate(parts))
    else:
        raise invalid("systemInstruction must be a Content object with text parts", "systemInstruction")
    return [{"role": "system", "content": text}] if text else []


def parts_of(content: dict, param: str = "systemInstruction") -> list[dict]:
    parts = content.get("parts", [])
    if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
        raise invalid("parts must be a list of Part objects", f"{param}.parts")
    return parts


def part_text(part: dict, param: str) -> str:
    if not isinstance(part.get("text"), str):
        raise invalid("expected a text part", param)
    return part["text"]


class CallIds:
    """The ids of the history's function calls, so that each functionResponse answers the call it belongs to."""

    def __init__(self) -> None:
        self.unanswered: dict[str, list[str]] = defaultdict(list)  # function name -> call ids, oldest first

    def called(self, call: dict) -> str:
        given = call.get("id")
        call_id = given if isinstance(given, str) and given else new_call_id()
        self.unanswered[call["name"]].append(call_id)
        return call_id

    def answered(self, response: dict) -> str:
        waiting = self.unanswered[response["name"]]
        if isinstance(response.get("id"), str) and response["id"] in waiting:
            waiting.remove(response["id"])
            return response["id"]
        return waiting.pop(0) if waiting else new_call_id()


def chat_messages(body: dict) -> list[dict]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid("contents must be a non-empty list of Content objects", "contents")
    ids = CallIds()
    messages: list[dict] = []
    for position, content in enumerate(contents):
        param = f"contents.{position}"
        if not isinstance(content, dict):
            raise invalid("a content must be an object with a role and parts", param)
        role = content.get("role") or "user"
        if role not in ROLES:
            raise invalid(f"unknown role {role!r}: contents take 'user' or 'model'", f"{param}.role")
        parts = parts_of(content, param)
        messages += user_messages(parts, param, ids) if role == "user" else model_messages(parts, param, ids)
    return messages


def user_messages(parts: list[dict], param: str, ids: CallIds) -> list[dict]:
    """A user turn: tool messages first (they answer the model turn just before), then the rest."""
    tool_messages: list[dict] = []
    converted: list[dict] = []
    for position, part in enumerate(parts):
        where = f"{param}.parts.{position}"
        response = field(part, "functionResponse")
        if response is not None:
            tool_messages.append(tool_message(function_object(response, where), where, ids))
        elif not history_only(part):
            converted.append(user_part(part, where))
    if not converted:
        return tool_messages
    return [*tool_messages, {"role": "user", "content": plain_when_text(converted)}]


def history_only(part: dict) -> bool:
    """A thought, or a part that carries only a thought signature (Gemini 3 and the Gemini CLI send those back):
    nothing another provider can read."""
    return bool(part.get("thought")) or set(part) <= THOUGHT_KEYS


def plain_when_text(parts: list[dict]) -> str | list[dict]:
    """Text-only content as one string: every OpenAI-compatible upstream takes that, not all take parts."""
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def user_part(part: dict, param: str) -> dict:
    if isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    inline = field(part, "inlineData")
    if isinstance(inline, dict):
        return inline_part(inline, param)
    file_data = field(part, "fileData")
    if isinstance(file_data, dict) and isinstance(field(file_data, "fileUri"), str):
        return {"type": "image_url", "image_url": {"url": field(file_data, "fileUri")}}
    raise not_supported(f"a part with {', '.join(sorted(part)) or 'nothing'}", param)


def inline_part(inline: dict, param: str) -> dict:
    mime, data = field(inline, "mimeType"), inline.get("data")
    if not isinstance(mime, str) or not mime or not isinstance(data, str) or not data:
        raise invalid("inlineData needs mimeType and base64 data strings", f"{param}.inlineData")
    url = f"data:{mime};base64,{data}"
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": url}}
    return {"type": "file", "file": {"filename": "file", "file_data": url}}


def function_object(value: object, param: str) -> dict:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        raise invalid("a functionCall or functionResponse needs a name", param)
    return value


def tool_message(response: dict, param: str, ids: CallIds) -> dict:
    answer = response.get("response", {})
    if not isinstance(answer, dict):
        raise invalid("functionResponse.response must be an object", f"{param}.functionResponse.response")
    return {"role": "tool", "tool_call_id": ids.answered(response), "content": json_text(answer)}


def model_messages(parts: list[dict], param: str, ids: CallIds) -> list[dict]:
    texts: list[str] = []
    tool_calls: list[dict] = []
    for position, part in enumerate(parts):
        where = f"{param}.parts.{position}"
        call = field(part, "functionCall")
        if call is not None:
            tool_calls.append(tool_call(function_object(call, where), where, ids))
        elif history_only(part):
            continue
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            raise not_supported(f"a model part with {', '.join(sorted(part)) or 'nothing'}", where)
    text = "".join(texts)
    # A turn of thoughts only has nothing another provider can read.
    return [assistant_message(text, tool_calls)] if text or tool_calls else []


def tool_call(call: dict, param: str, ids: CallIds) -> dict:
    arguments = call.get("args", {})
    if not isinstance(arguments, dict):
        raise invalid("functionCall.args must be an object", f"{param}.functionCall.args")
    function = {"name": call["name"], "arguments": json_text(arguments)}
    return {"id": ids.called(call), "type": "function", "function": function}


def openapi_to_json_schema(schema: object) -> object:
    """Gemini's OpenAPI subset (upper-case `type` names) as JSON Schema (lower-case)."""
    if isinstance(schema, list):
        return [openapi_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted: dict = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            converted[key] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            converted[key] = {name: openapi_to_json_schema(child) for name, child in value.items()}
        else:
            converted[key] = openapi_to_json_schema(value)
    return converted


def schema_of(config: dict, openapi_name: str, json_name: str) -> dict | None:
    """The JSON Schema of `json_name`, else of the OpenAPI schema `openapi_name`, else None."""
    json_schema = field(config, json_name)
    if isinstance(json_schema, dict):
        return json_schema
    schema = field(config, openapi_name)
    return openapi_to_json_schema(schema) if isinstance(schema, dict) else None  # type: ignore[return-value]


def generation_fields(config: dict) -> dict:
    fields: dict = {}
    for gemini, openai in (
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
        ("seed", "seed"),
        ("maxOutputTokens", "max_tokens"),
        ("candidateCount", "n"),
    ):
        value = field(config, gemini)
        if isinstance(value, int | float) and not isinstance(value, bool):
            fields[openai] = value
    stops = field(config, "stopSequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
            raise invalid("stopSequences must be a list of strings", "generationConfig.stopSequences")
        if stops:
            fields["stop"] = stops
    fields.update(response_format(config))
    effort = reasoning_effort(object_or_empty(field(config, "thinkingConfig")))
    if effort:
        fields["reasoning_effort"] = effort
    return fields


def response_format(config: dict) -> dict:
    schema = schema_of(config, "responseSchema", "responseJsonSchema")
    if schema is not None:
        return {"response_format": {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": schema}}}
    if field(config, "responseMimeType") == JSON_MIME_TYPE:
        return {"response_format": {"type": "json_object"}}
    return {}


def reasoning_effort(thinking: dict) -> str | None:
    level = field(thinking, "thinkingLevel")
    if isinstance(level, str):
        return EFFORTS.get(level.lower())
    budget = field(thinking, "thinkingBudget")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
        return None  # absent, or -1: the model decides
    return next((effort for below, effort in EFFORT_BY_BUDGET if budget < below), "high")


def tool_fields(body: dict) -> dict:
    tools = field(body, "tools")
    if tools is None or tools == []:
        return {}
    if not isinstance(tools, list):
        raise invalid("tools must be a list of Tool objects", "tools")
    functions: list[dict] = []
    for position, tool in enumerate(tools):
        functions += tool_functions(tool, f"tools.{position}")
    if not functions:
        return {}
    choice = object_or_empty(field(object_or_empty(field(body, "toolConfig")), "functionCallingConfig"))
    return choice_fields(functions, choice)


def tool_functions(tool: object, param: str) -> list[dict]:
    if not isinstance(tool, dict):
        raise invalid("a tool must be an object", param)
    built_in = sorted(set(tool) - FUNCTION_TOOL_KEYS)
    if built_in:
        raise not_supported(f"the built-in tool {built_in[0]!r}", f"{param}.{built_in[0]}")
    declarations = field(tool, "functionDeclarations") or []
    if not isinstance(declarations, list):
        raise invalid("functionDeclarations must be a list", f"{param}.functionDeclarations")
    return [function_tool(item, f"{param}.functionDeclarations.{n}") for n, item in enumerate(declarations)]


def function_tool(declaration: object, param: str) -> dict:
    if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str) or not declaration["name"]:
        raise invalid("a function declaration needs a name", param)
    function: dict = {"name": declaration["name"]}
    if isinstance(declaration.get("description"), str):
        function["description"] = declaration["description"]
    function["parameters"] = schema_of(declaration, "parameters", "parametersJsonSchema") or {
        "type": "object",
        "properties": {},
    }
    return {"type": "function", "function": function}


def choice_fields(functions: list[dict], config: dict) -> dict:
    """tools and tool_choice from functionCallingConfig: ANY with allowedFunctionNames keeps only those
    functions (one of them: a named tool_choice)."""
    mode = config.get("mode", "AUTO")
    if mode not in TOOL_CHOICES:
        raise invalid("functionCallingConfig.mode must be AUTO, ANY, NONE or VALIDATED", "toolConfig")
    allowed = field(config, "allowedFunctionNames")
    if mode == "ANY" and isinstance(allowed, list) and allowed:
        functions = [tool for tool in functions if tool["function"]["name"] in allowed]
        if not functions:
            raise invalid("allowedFunctionNames names no declared function", "toolConfig")
        if len(functions) == 1:
            named = {"type": "function", "function": {"name": functions[0]["function"]["name"]}}
            return {"tools": functions, "tool_choice": named}
    fields: dict = {"tools": functions}
    if "mode" in config:
        fields["tool_choice"] = TOOL_CHOICES[mode]
    return fields


# --- answer: OpenAI chat -> GenerateContentResponse ---


def from_chat(answer: dict, model: str, response_id: str, usage: Usage) -> dict:
    """An OpenAI chat completion -> a GenerateContentResponse with `usage` (what was billed)."""
    choices = answer.get("choices")
    candidates = [
        candidate(object_or_empty(choice), position)
        for position, choice in enumerate(choices if isinstance(choices, list) else ())
    ]
    return {
        "candidates": candidates,
        "usageMetadata": usage_metadata(usage),
        "modelVersion": model,
        "responseId": response_id,
    }


def candidate(choice: dict, position: int) -> dict:
    message = object_or_empty(choice.get("message"))
    parts = thought_parts(reasoning_of(message)) + text_parts(message.get("content"))
    calls = message.get("tool_calls")
    parts += [function_call_part(call) for call in calls if isinstance(call, dict)] if isinstance(calls, list) else []
    return {
        "content": {"role": "model", "parts": parts},
        "finishReason": finish_reason(choice.get("finish_reason")),
        "index": choice.get("index", position),
    }


def thought_parts(reasoning: str) -> list[dict]:
    return [{"text": reasoning, "thought": True}] if reasoning else []


def text_parts(content: object) -> list[dict]:
    return [{"text": content}] if isinstance(content, str) and content else []


def function_call_part(call: dict) -> dict:
    function = object_or_empty(call.get("function"))
    name = function.get("name") if isinstance(function.get("name"), str) else ""
    found = {"name": name, "args": tool_arguments(function.get("arguments"))}
    if isinstance(call.get("id"), str) and call["id"]:
        found["id"] = call["id"]
    return {"functionCall": found}


def finish_reason(reason: object) -> str:
    """OpenAI's finish_reason -> Gemini's; a tool call ends a Gemini turn with STOP."""
    return FINISH_REASONS.get(reason, "STOP") if isinstance(reason, str) else "STOP"


def usage_metadata(usage: Usage) -> dict:
    """Gemini's usageMetadata: thinking is counted apart from the candidates, cached input inside the prompt."""
    metadata = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": usage.completion_tokens - usage.reasoning_tokens,
        "totalTokenCount": usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cache_read_tokens:
        metadata["cachedContentTokenCount"] = usage.cache_read_tokens
    if usage.reasoning_tokens:
        metadata["thoughtsTokenCount"] = usage.reasoning_tokens
    return metadata


# --- stream: OpenAI chunks -> GenerateContentResponse chunks ---


class GenerateStream:
    """Gemini's stream grammar: each chunk a GenerateContentResponse with only the new parts; the last one with
    each candidate's finishReason and usageMetadata. Function calls are held until their arguments are whole."""

    def __init__(self, model: str, response_id: str) -> None:
        self.model = model
        self.response_id = response_id
        self.calls: dict[int, dict[object, dict]] = defaultdict(dict)  # candidate -> call index -> call so far
        self.reasons: dict[int, str] = {}  # candidate -> Gemini finishReason
        self.finished = False

    def feed(self, chunk: dict) -> list[dict]:
        """The Gemini chunks for one OpenAI chunk."""
        if self.finished:
            return []
        choices = chunk.get("choices")
        candidates = []
        for choice in choices if isinstance(choices, list) else ():
            found = self.candidate(object_or_empty(choice))
            if found is not None:
                candidates.append(found)
        return [self.response(candidates)] if candidates else []

    def candidate(self, choice: dict) -> dict | None:
        given = choice.get("index")
        index = given if isinstance(given, int) else 0
        delta = object_or_empty(choice.get("delta"))
        parts = thought_parts(reasoning_of(delta)) + text_parts(delta.get("content"))
        self.collect_calls(index, delta.get("tool_calls"))
        if isinstance(choice.get("finish_reason"), str):
            self.reasons[index] = finish_reason(choice["finish_reason"])
            parts += self.complete_calls(index)
        return {"content": {"role": "model", "parts": parts}, "index": index} if parts else None

    def collect_calls(self, index: int, calls: object) -> None:
        for position, call in enumerate(calls if isinstance(calls, list) else ()):
            if not isinstance(call, dict):
                continue
            held = self.calls[index].setdefault(call.get("index", position), {"id": "", "name": "", "arguments": ""})
            function = object_or_empty(call.get("function"))
            for name, value in (("id", call.get("id")), ("name", function.get("name"))):
                if isinstance(value, str) and value:
                    held[name] = value
            if isinstance(function.get("arguments"), str):
                held["arguments"] += function["arguments"]

    def complete_calls(self, index: int) -> list[dict]:
        calls = self.calls.pop(index, {})
        return [
            function_call_part({"id": call["id"], "function": {"name": call["name"], "arguments": call["arguments"]}})
            for call in calls.values()
        ]

    def finish(self, usage: Usage) -> list[dict]:
        """The last chunk: calls still held, each candidate's finishReason, the billed usage. Once only."""
        if self.finished:
            return []
        self.finished = True
        indices = sorted(set(self.reasons) | set(self.calls)) or [0]
        candidates = [
            {
                "content": {"role": "model", "parts": self.complete_calls(index)},
                "finishReason": self.reasons.get(index, "STOP"),
                "index": index,
            }
            for index in indices
        ]
        return [{**self.response(candidates), "usageMetadata": usage_metadata(usage)}]

    def response(self, candidates: list[dict]) -> dict:
        return {"candidates": candidates, "modelVersion": self.model, "responseId": self.response_id}


# --- embeddings ---


def embedding_requests(body: dict, batch: bool) -> list[dict]:
    """The EmbedContentRequest objects of an embedContent body (itself) or a batchEmbedContents body."""
    if not batch:
        return [body]
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests or not all(isinstance(item, dict) for item in requests):
        raise invalid("requests must be a non-empty list of EmbedContentRequest objects", "requests")
    return requests


def embedding_texts(body: dict, batch: bool) -> list[str]:
    texts = []
    for position, request in enumerate(embedding_requests(body, batch)):
        param = f"requests.{position}.content" if batch else "content"
        content = request.get("content")
        if not isinstance(content, dict):
            raise invalid("content must be a Content object with text parts", param)
        texts.append("".join(part_text(part, f"{param}.parts.{n}") for n, part in enumerate(parts_of(content, param))))
    return texts


def to_embeddings(body: dict, model: str, batch: bool) -> dict:
    """An embedContent / batchEmbedContents body -> an OpenAI embeddings body (one input per request)."""
    embeddings: dict = {"model": model, "input": embedding_texts(body, batch)}
    dimensions = field(embedding_requests(body, batch)[0], "outputDimensionality")
    if isinstance(dimensions, int) and not isinstance(dimensions, bool) and dimensions > 0:
        embeddings["dimensions"] = dimensions
    return embeddings


def from_embeddings(answer: dict, batch: bool) -> dict:
    """An OpenAI embeddings answer -> embedContent's `{"embedding": ...}` or batchEmbedContents' `{"embeddings"}`."""
    data = answer.get("data")
    items = sorted(
        (item for item in data if isinstance(item, dict)) if isinstance(data, list) else (),
        key=lambda item: item.get("index") or 0,
    )
    embeddings = [{"values": item.get("embedding") or []} for item in items]
    if batch:
        return {"embeddings": embeddings}
    return {"embedding": embeddings[0] if embeddings else {"values": []}}


# --- counting the prompt ---


def prompt_tokens(body: dict, measure: Measure) -> int:
    """The generateContent request's prompt by `measure` (tokenizer.Tokens, or tokenizer.utf8_bytes for the
    bound): the system instruction, every content's texts, function calls and responses, and the tool
    declarations, with a per-content overhead as relay.tokenizer.count_messages counts. Images are left to the
    caller."""
    total = REPLY_PRIMER
    instruction = field(body, "systemInstruction")
    if isinstance(instruction, dict):
        total += sum(measure(text) for text in texts_of(instruction.get("parts")))
    contents = body.get("contents")
    for content in contents if isinstance(contents, list) else ():
        if isinstance(content, dict):
            total += MESSAGE_OVERHEAD + sum(measure(text) for text in texts_of(content.get("parts")))
    tools = field(body, "tools")
    if isinstance(tools, list) and tools:
        total += measure(json_text(tools))
    return total


def texts_of(parts: object) -> list[str]:
    """The texts a model reads in parts: text, a function call's name and args, a function response."""
    texts: list[str] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        for name in ("functionCall", "functionResponse"):
            if isinstance(field(part, name), dict):
                texts.append(json_text(field(part, name)))
    return texts


def embedding_tokens(body: dict, batch: bool, measure: Measure) -> int:
    """Every text of an embedContent / batchEmbedContents request by `measure`; 0 for a malformed one (parse
    refuses it first)."""
    requests = body.get("requests") if batch else [body]
    total = 0
    for request in requests if isinstance(requests, list) else ():
        content = request.get("content") if isinstance(request, dict) else None
        total += sum(measure(text) for text in texts_of(content.get("parts") if isinstance(content, dict) else None))
    return total
