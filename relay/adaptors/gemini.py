"""Google Gemini API (AI Studio key) behind the OpenAI chat format (spec: gemini.md sections 1-6).

Decisions worth knowing:
- API version per upstream model from settings.GEMINI_MODEL_MAP ("model:version,..."), else
  DEFAULT_API_VERSION (v1beta: the only one with systemInstruction, tools and JSON mode for every model).
  On `v1` the system prompt is sent as a leading user turn.
- The key travels as the `key` query parameter. Nothing here logs URLs, and the relay reports transport
  failures by exception type only, so the key stays out of logs and client-visible errors.
- Image parts with an http(s) URL become `fileData` parts: the Gemini API fetches public and signed URLs
  itself, and `build_request` is synchronous on the event loop, so it cannot download them.
- Every safety category gets the threshold settings.GEMINI_SAFETY_SETTING (default BLOCK_NONE).
- A stream's usage (cumulative on every event) is committed once the answer is complete: at the event
  carrying finishReason, or when the upstream closes normally. A stream cut short before that is billed
  by local counting of what was delivered.
- Gemini's function calls have no ids: we make `call_<hex>` ids, and find a tool result's function name
  again from the assistant message that carries the same id.
"""

import mimetypes
from functools import cache
from urllib.parse import urlencode

import orjson
from django.conf import settings

from channels_app.channel_types import both
from channels_app.routing import ChannelInfo
from gateway_project.safe_text import model_path_segment
from relay.adaptors.base import (
    GEMINI_BATCH_EMBED,
    GEMINI_GENERATE,
    GEMINI_METHODS,
    GEMINI_STREAM,
    Adaptor,
    ErrorEventRelayed,
    RelayRequest,
    StreamConverter,
    UpstreamFailed,
    UpstreamFailure,
    UpstreamRequest,
    Usage,
    load_json,
    names_in,
    openai_style_error,
)
from relay.adaptors.openai_format import (
    ChunkWriter,
    DataUrl,
    append_turn,
    assistant_message,
    client_tool_calls,
    completion_body,
    completion_text,
    content_parts,
    content_text,
    file_data_url,
    image_url_of,
    json_or_none,
    new_call_id,
    new_completion_id,
    openai_tool_call,
    parse_data_url,
    reported_usage,
    request_json,
    require_chat,
    stop_sequences,
    stream_event,
    text_or_empty,
    token_count,
    tool_functions,
    unsupported,
    usage_object,
)
from relay.errors import RelayError

SLUG = "gemini"
MODEL_LIST_PAGE = 1000  # the most models.list returns at once
DEFAULT_API_VERSION = "v1beta"
DEFAULT_SAFETY_THRESHOLD = "BLOCK_NONE"
CIVIC_INTEGRITY = "HARM_CATEGORY_CIVIC_INTEGRITY"
SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    CIVIC_INTEGRITY,
)
MAX_STOP_SEQUENCES = 5
# A key or project that cannot serve: google.rpc statuses, and ErrorInfo reasons in `error.details`.
DEAD_KEY_STATUSES = {"UNAUTHENTICATED", "PERMISSION_DENIED"}
DEAD_KEY_REASONS = {
    "API_KEY_INVALID",
    "API_KEY_SERVICE_BLOCKED",
    "CONSUMER_SUSPENDED",
    "SERVICE_DISABLED",
    "BILLING_DISABLED",
}
AUDIO_MIME_TYPES: dict[object, str] = {"wav": "audio/wav", "mp3": "audio/mp3"}

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}

# Schema keywords the API rejects with a 400 in function parameters and responseSchema.
UNSUPPORTED_SCHEMA_KEYS = frozenset(
    {"additionalProperties", "$schema", "$id", "title", "default", "exclusiveMinimum", "exclusiveMaximum", "strict"}
)
STRING_FORMATS = frozenset({"enum", "date-time"})

GENERATION_FIELDS = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}


def finish_reason(reason: object, called_functions: bool) -> str:
    mapped = FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if called_functions and mapped == "stop" else mapped


@cache
def version_map(raw: str) -> dict[str, str]:
    """Parse GEMINI_MODEL_MAP once per distinct value (the cache key is the setting's text)."""
    versions = {}
    for entry in raw.split(","):
        model, _, version = entry.partition(":")
        if model.strip() and version.strip():
            versions[model.strip()] = version.strip()
    return versions


def api_version(model: str) -> str:
    return version_map(settings.GEMINI_MODEL_MAP).get(model, DEFAULT_API_VERSION)


def safety_settings() -> list[dict]:
    threshold = settings.GEMINI_SAFETY_SETTING or DEFAULT_SAFETY_THRESHOLD
    # Civic integrity does not accept OFF on every model; BLOCK_NONE is the most permissive it always takes.
    civic = "BLOCK_NONE" if threshold == "OFF" else threshold
    return [
        {"category": category, "threshold": civic if category == CIVIC_INTEGRITY else threshold}
        for category in SAFETY_CATEGORIES
    ]


def clean_schema(schema: object) -> object:
    """A JSON schema reduced to the OpenAPI subset Gemini accepts."""
    if isinstance(schema, list):
        return [clean_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned: dict[str, object] = {}
    for key, value in schema.items():
        if key in UNSUPPORTED_SCHEMA_KEYS:
            continue
        if key == "format" and schema.get("type") == "string" and value not in STRING_FORMATS:
            continue
        if key == "properties" and isinstance(value, dict):
            cleaned[key] = {name: clean_schema(child) for name, child in value.items()}  # names are not keywords
        else:
            cleaned[key] = clean_schema(value)
    return cleaned


# --- request: OpenAI chat -> Gemini generateContent ---


def inline_part(data_url: DataUrl) -> dict:
    return {"inlineData": {"mimeType": data_url.mime, "data": data_url.data}}


def media_part(url: str) -> dict:
    data_url = parse_data_url(url)
    if data_url is not None:
        return inline_part(data_url)
    file_data = {"fileUri": url}
    guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
    if guessed:
        file_data["mimeType"] = guessed
    return {"fileData": file_data}


def audio_part(part: dict) -> dict:
    audio = part.get("input_audio")
    if not isinstance(audio, dict):
        audio = {}
    if not audio.get("data"):
        raise RelayError(400, "input_audio parts need base64 data", "invalid_audio")
    mime = AUDIO_MIME_TYPES.get(audio.get("format"), f"audio/{audio.get('format') or 'wav'}")
    return inline_part(DataUrl(mime, audio["data"]))


def content_to_parts(content: object) -> list[dict]:
    parts = []
    for part in content_parts(content):
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            parts.append(media_part(image_url_of(part)))
        elif kind == "input_audio":
            parts.append(audio_part(part))
        elif kind == "file":
            parts.append(inline_part(file_data_url(part, SLUG)))
        else:
            raise unsupported(f"content part {kind!r}", SLUG)
    return parts


def function_call_parts(message: dict, names: dict[str, str]) -> list[dict]:
    parts = []
    for call_id, name, arguments in client_tool_calls(message):
        names[call_id] = name
        parts.append({"functionCall": {"name": name, "args": arguments}})
    return parts


def function_response_part(message: dict, names: dict[str, str]) -> dict:
    name = names.get(text_or_empty(message.get("tool_call_id"))) or message.get("name") or ""
    content = message.get("content")
    text = content if isinstance(content, str) else content_text(content)
    try:
        response = orjson.loads(text)
    except orjson.JSONDecodeError:
        response = None
    if not isinstance(response, dict):
        response = {"name": name, "content": text}  # Gemini wants an object; tools often answer plain text
    return {"functionResponse": {"name": name, "response": response}}


def turn_of(message: dict, names: dict[str, str]) -> tuple[str, list[dict]]:
    role = message.get("role")
    if role == "user":
        return "user", content_to_parts(message.get("content"))
    if role == "assistant":
        return "model", content_to_parts(message.get("content")) + function_call_parts(message, names)
    if role == "tool":
        return "user", [function_response_part(message, names)]
    raise unsupported(f"message role {role!r}", SLUG)


def system_and_contents(messages: list[dict], system_as_turn: bool) -> tuple[str, list[dict]]:
    names: dict[str, str] = {}  # tool call id -> function name, for the tool results that follow
    system_texts: list[str] = []
    contents: list[dict] = []
    for message in messages:
        if message.get("role") in ("system", "developer"):
            system_texts.append(content_text(message.get("content")))
            continue
        role, parts = turn_of(message, names)
        if parts:  # Gemini rejects turns without parts; skipping keeps the neighbours mergeable
            append_turn(contents, role, parts, key="parts")
    system = "\n".join(text for text in system_texts if text)
    if system and system_as_turn:
        leading = [{"role": "user", "parts": [{"text": system}]}]
        for turn in contents:
            append_turn(leading, turn["role"], turn["parts"], key="parts")
        contents, system = leading, ""
    return system, contents


def generation_config(body: dict) -> dict:
    config = {GENERATION_FIELDS[name]: body[name] for name in GENERATION_FIELDS if body.get(name) is not None}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    stops = stop_sequences(body.get("stop"))[:MAX_STOP_SEQUENCES]
    if stops:
        config["stopSequences"] = stops
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        response_format = {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    schema = (response_format.get("json_schema") or {}).get("schema")
    if response_format.get("type") == "json_schema" and isinstance(schema, dict):
        config["responseSchema"] = clean_schema(schema)
    return config


def function_declarations(tools: object) -> list[dict]:
    declarations = []
    for function in tool_functions(tools):
        declaration: dict = {"name": function.get("name") or ""}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = clean_schema(function.get("parameters"))
        # An object schema without properties is rejected: a function without arguments omits it.
        if isinstance(parameters, dict) and parameters.get("properties"):
            declaration["parameters"] = parameters
        declarations.append(declaration)
    return declarations


def tool_config(choice: object) -> dict | None:
    if choice == "auto":
        config: dict[str, object] = {"mode": "AUTO"}
    elif choice == "required":
        config = {"mode": "ANY"}
    elif choice == "none":
        config = {"mode": "NONE"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config = {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name") or ""]}
    else:
        return None
    return {"functionCallingConfig": config}


def generate_body(request: RelayRequest, version: str) -> dict:
    body = request.body
    system, contents = system_and_contents(body["messages"], system_as_turn=version == "v1")
    out: dict = {"contents": contents, "safetySettings": safety_settings()}
    if system:
        out["systemInstruction"] = {"parts": [{"text": system}]}
    config = generation_config(body)
    if config:
        out["generationConfig"] = config
    declarations = function_declarations(body.get("tools"))
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
        choice = tool_config(body.get("tool_choice"))
        if choice is not None:
            out["toolConfig"] = choice
    return out


# --- response: Gemini -> OpenAI chat ---


def usage_of(raw: object) -> Usage:
    """Gemini's usageMetadata: `cachedContentTokenCount` is part of `promptTokenCount`; thinking is billed as
    output."""
    thoughts = token_count(raw, "thoughtsTokenCount")
    return Usage(
        prompt_tokens=token_count(raw, "promptTokenCount"),
        completion_tokens=token_count(raw, "candidatesTokenCount") + thoughts,
        cache_read_tokens=token_count(raw, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def read_parts(parts: object) -> tuple[str, str, list[dict]]:
    """(answer text, thought text, function calls as {name, args}) of one candidate's parts."""
    texts, thoughts, calls = [], [], []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            calls.append(part["functionCall"])
        elif part.get("thought") and isinstance(part.get("text"), str):
            thoughts.append(part["text"])
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("executableCode"), dict):
            code = part["executableCode"]
            texts.append(f"\n```{str(code.get('language') or '').lower()}\n{code.get('code') or ''}\n```\n")
        elif isinstance(part.get("codeExecutionResult"), dict):
            texts.append(f"\n```output\n{part['codeExecutionResult'].get('output') or ''}\n```\n")
    return "".join(texts), "".join(thoughts), calls


def tool_call_of(call: dict) -> dict:
    return openai_tool_call(call.get("id") or new_call_id(), call.get("name") or "", call.get("args") or {})


def choice_of(candidate: dict, position: int) -> dict:
    text, thoughts, calls = read_parts((candidate.get("content") or {}).get("parts"))
    message = assistant_message(text, [tool_call_of(call) for call in calls], thoughts)
    return {
        "index": candidate.get("index", position),
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
    }


def blocked_choice() -> dict:
    """A prompt Gemini refused to answer (no candidates, promptFeedback.blockReason set)."""
    return {"index": 0, "message": assistant_message("", []), "logprobs": None, "finish_reason": "content_filter"}


def failure_of(status: int, body: object) -> UpstreamFailure | None:
    """Google's `{"error": {code, message, status, details}}`, also inside the one-element list some
    endpoints send. Google answers a dead key with 400 INVALID_ARGUMENT and the reason API_KEY_INVALID:
    that refuses the key, not the request, so it becomes a 401 (another channel is tried, and the
    channel's auto-disable rule applies)."""
    if isinstance(body, list) and body:
        body = body[0]
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not error.get("message"):
        return None
    details = error.get("details")
    if not isinstance(details, list):
        details = []
    reasons = {str(detail.get("reason")) for detail in details if isinstance(detail, dict)}
    dead = str(error.get("status")) in DEAD_KEY_STATUSES or bool(reasons & DEAD_KEY_REASONS)
    if dead and status == 400:
        status = 401
    code = error.get("status") or error.get("code")
    return UpstreamFailure(status, str(error["message"]), None, code, permanent=dead)


class GeminiAdaptor(Adaptor):
    slug = SLUG
    label = "Google Gemini"
    old_types = (both(24),)
    default_base_url = "https://generativelanguage.googleapis.com"

    def build_request(self, request: RelayRequest, channel: ChannelInfo) -> UpstreamRequest:
        model = channel.upstream_model(request.model)
        version = api_version(model)
        headers = {"Content-Type": "application/json"}
        if request.endpoint in GEMINI_METHODS:
            url = self.url(channel, model, version, request.endpoint)
            return UpstreamRequest(url, headers, native_body(request, model))
        require_chat(request, SLUG)
        method = GEMINI_STREAM if request.stream else GEMINI_GENERATE
        body = request_json(generate_body(request, version))
        return UpstreamRequest(url=self.url(channel, model, version, method), headers=headers, content=body)

    def url(self, channel: ChannelInfo, model: str, version: str, method: str) -> str:
        query = {"alt": "sse"} if method == GEMINI_STREAM else {}
        query["key"] = channel.key
        return f"{self.base_url(channel)}/{version}/models/{model_path_segment(model)}:{method}?{urlencode(query)}"

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest | None:
        query = urlencode({"pageSize": MODEL_LIST_PAGE, "key": channel.key})
        return UpstreamRequest(f"{self.base_url(channel)}/v1beta/models?{query}", {}, b"", "GET")

    def model_names(self, content: bytes) -> list[str]:
        return [name.removeprefix("models/") for name in names_in(content, "models", "name")]

    def convert_response(self, request: RelayRequest, content: bytes) -> tuple[bytes, Usage | None, str]:
        if request.endpoint in GEMINI_METHODS:
            return native_answer(content)
        body = load_json(content)
        candidates = [c for c in body.get("candidates") or () if isinstance(c, dict)]
        choices = [choice_of(candidate, position) for position, candidate in enumerate(candidates)]
        usage = usage_of(body.get("usageMetadata"))
        answer = completion_body(
            request, body.get("responseId") or new_completion_id(), choices or [blocked_choice()], usage_object(usage)
        )
        return answer, reported_usage(usage), "".join(completion_text(choice["message"]) for choice in choices)

    def stream_converter(self, request: RelayRequest) -> StreamConverter:
        return NativeStream(request) if request.endpoint == GEMINI_STREAM else GeminiStream(request)

    def parse_error(self, status: int, content: bytes) -> UpstreamFailure:
        return failure_of(status, json_or_none(content)) or openai_style_error(status, content)


class GeminiStream(StreamConverter):
    """Each SSE event is a whole GenerateContentResponse holding only the new text; the upstream closing
    the connection is the only end marker."""

    def __init__(self, request: RelayRequest) -> None:
        super().__init__(request)
        self.writer = ChunkWriter(request, self.state)
        self.latest_usage: Usage | None = None
        self.calls_made: dict[int, int] = {}  # choice index -> tool calls streamed so far
        self.finished: set[int] = set()

    def feed(self, payload: bytes) -> list[bytes]:
        event = stream_event(payload, SLUG)
        if event is None:
            return []
        failure = failure_of(502, event)
        if failure is not None:
            raise UpstreamFailed(failure)
        self.writer.start(event.get("responseId") or "")
        if "usageMetadata" in event:
            self.latest_usage = reported_usage(usage_of(event["usageMetadata"]))
            self.state.input_usage = self.latest_usage
        chunks = self.blocked_chunks(event)
        for position, candidate in enumerate(event.get("candidates") or ()):
            if isinstance(candidate, dict):
                chunks.extend(self.candidate_chunks(candidate, candidate.get("index", position)))
        if self.finished:
            self.state.usage = self.latest_usage
        return chunks

    def finish(self) -> list[bytes]:
        self.state.usage = self.latest_usage
        if self.finished:
            return []
        return [self.writer.chunk({}, "stop")]  # closed without a finishReason: the close is the end

    def blocked_chunks(self, event: dict) -> list[bytes]:
        if event.get("candidates") or not (event.get("promptFeedback") or {}).get("blockReason"):
            return []
        self.finished.add(0)
        return [self.writer.chunk({"content": ""}, "content_filter")]

    def candidate_chunks(self, candidate: dict, index: int) -> list[bytes]:
        text, thoughts, calls = read_parts((candidate.get("content") or {}).get("parts"))
        delta: dict = {}
        if text:
            delta["content"] = text
        if thoughts:
            delta["reasoning_content"] = thoughts
        if calls:
            first = self.calls_made.get(index, 0)
            self.calls_made[index] = first + len(calls)
            # Gemini sends each call whole; indices keep counting across events so clients never merge two calls.
            delta["tool_calls"] = [{"index": first + n, **tool_call_of(call)} for n, call in enumerate(calls)]
        chunks = [self.writer.chunk(delta, None, index)] if delta else []
        if candidate.get("finishReason"):
            self.finished.add(index)
            reason = finish_reason(candidate["finishReason"], self.calls_made.get(index, 0) > 0)
            chunks.append(self.writer.chunk({}, reason, index))
        return chunks


# --- a Gemini client's own request (relay.formats.gemini_native), passed through ---


def native_body(request: RelayRequest, model: str) -> bytes:
    """The client's own body: its bytes, unless it is a batch whose requests name the model the channel maps
    (the model of every other method is in the URL only)."""
    if request.endpoint != GEMINI_BATCH_EMBED or model == request.model:
        return request.raw
    requests = [{**item, "model": f"models/{model}"} for item in request.body["requests"]]
    return request_json({**request.body, "requests": requests})


def answer_text(event: dict) -> tuple[str, int]:
    """(the text, thoughts and function calls of every candidate, for local counting; the number of calls)."""
    texts, calls_made = [], 0
    for candidate in event.get("candidates") or ():
        if isinstance(candidate, dict):
            text, thoughts, calls = read_parts((candidate.get("content") or {}).get("parts"))
            texts += [thoughts, text, *(orjson.dumps(call).decode() for call in calls)]
            calls_made += len(calls)
    return "".join(texts), calls_made


def native_answer(content: bytes) -> tuple[bytes, Usage | None, str]:
    """A passed-through answer: its bytes, and what billing needs from them."""
    body = load_json(content)
    return content, reported_usage(usage_of(body.get("usageMetadata"))), answer_text(body)[0]


class NativeStream(StreamConverter):
    """A passed-through stream's events read for billing only (the relay writes the upstream's bytes): the usage
    of the event that finished the answer (or of the last one, when the upstream closed without one), the text.
    Each event is returned as it came. Gemini repeats usageMetadata on every event: it is kept as it came and
    read once, at the end (the input counts, which do not change, from the first)."""

    def __init__(self, request: RelayRequest) -> None:
        super().__init__(request)
        self.metadata: object = None  # the latest usageMetadata

    def feed(self, payload: bytes) -> list[bytes]:
        event = stream_event(payload, SLUG) or {}
        if "error" in event:
            raise ErrorEventRelayed(failure_of(502, event) or UpstreamFailure(502, "gemini sent an error event"))
        if "usageMetadata" in event:
            self.metadata = event["usageMetadata"]
            if self.state.input_usage is None:
                self.state.input_usage = reported_usage(usage_of(self.metadata))
        finished = False
        for candidate in event.get("candidates") or ():
            if isinstance(candidate, dict):
                self.read_candidate(candidate)
                finished = finished or bool(candidate.get("finishReason"))
        if finished:
            self.state.usage = reported_usage(usage_of(self.metadata))
        return [payload]

    def read_candidate(self, candidate: dict) -> None:
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                self.state.text_parts.append(part["text"])
            elif "functionCall" in part:
                self.state.text_parts.append(orjson.dumps(part["functionCall"]).decode())
                self.state.max_tool_calls += 1

    def finish(self) -> list[bytes]:
        self.state.usage = reported_usage(usage_of(self.metadata))
        return []
