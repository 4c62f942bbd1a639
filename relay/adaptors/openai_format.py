"""OpenAI chat vocabulary shared by every adaptor that translates to and from another provider's format.

Reading the client's request (content parts, data URLs, tool-call arguments) and writing OpenAI answers
(completion bodies, stream chunks, usage objects) live here once; the provider modules only hold what is
specific to their provider's wire format.
"""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from relay.adaptors.base import RelayRequest, StreamState, UpstreamFailed, UpstreamFailure, Usage
from relay.errors import RelayError
from relay.tokenizer import Measure, Tokens

# --- requests: reading the client's OpenAI chat request ---


def require_chat(request: RelayRequest, slug: str) -> None:
    require_endpoint(request, slug, "chat")


def require_endpoint(request: RelayRequest, slug: str, *endpoints: str) -> None:
    if request.endpoint not in endpoints:
        # 501 lets the relay try a channel of another type for the same model.
        served = " and ".join("chat completions" if name == "chat" else name for name in endpoints)
        failure = UpstreamFailure(501, f"{slug} channels serve {served} only", "unsupported_endpoint")
        raise UpstreamFailed(failure)


@dataclass(frozen=True)
class DataUrl:
    mime: str
    data: str  # base64, without the `data:...,` prefix


def parse_data_url(url: str) -> DataUrl | None:
    """`data:<mime>;base64,<data>` -> DataUrl; None for anything that is not a data URL."""
    if not url.startswith("data:"):
        return None
    header, separator, data = url[5:].partition(",")
    mime, *parameters = header.split(";")
    if not separator or "base64" not in (p.strip().lower() for p in parameters) or not data:
        raise RelayError(400, "data URLs must be base64 encoded (data:<mime>;base64,<data>)", "invalid_data_url")
    return DataUrl(mime.strip().lower() or "application/octet-stream", data)


def is_http_url(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def content_parts(content: object) -> list[dict]:
    """A message's content as a list of part objects: a plain string becomes one text part."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        return []
    parts = [part for part in content if isinstance(part, dict)]
    # Every adaptor joins or copies the text of text parts: anything but a string there is the client's error.
    if any(part.get("type") == "text" and not isinstance(part.get("text") or "", str) for part in parts):
        raise RelayError(400, "the text of a text part must be a string", "invalid_content", param="messages")
    return parts


def content_text(content: object) -> str:
    """The text parts of a message's content joined, for places that only take text (system prompts)."""
    return "\n".join(part.get("text") or "" for part in content_parts(content) if part.get("type") == "text")


def image_url_of(part: dict) -> str:
    """The URL of an `image_url` part, a data URL or an http(s) one.

    Some clients send `image_url` as a bare string instead of an object; both are accepted.
    """
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not (url.startswith("data:") or is_http_url(url)):
        raise RelayError(400, "image_url must be an http(s) URL or a base64 data URL", "invalid_image_url")
    return url


def file_data_url(part: dict, slug: str) -> DataUrl:
    """The inline data of a `file` part; uploaded-file ids mean nothing to other providers."""
    file = part.get("file")
    if not isinstance(file, dict):
        file = {}
    data_url = parse_data_url(file.get("file_data") or "")
    if data_url is None:
        raise unsupported("a file part without file_data", slug)
    return data_url


def unsupported(what: str, slug: str) -> RelayError:
    return RelayError(400, f"{what} is not supported by {slug} channels", "unsupported_content")


def append_turn(turns: list[dict], role: str, items: list[dict], key: str) -> None:
    """Append a conversation turn, merged into the previous one when the role repeats.

    Anthropic and Gemini both want user and assistant turns to alternate; `key` names the list the
    provider keeps a turn's blocks in (`content` or `parts`).
    """
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: list(items)})


@dataclass(frozen=True)
class BlockTurns:
    """How a provider that takes alternating user and assistant turns of content blocks (Anthropic, Bedrock's
    Converse) writes a message's content, an assistant's tool calls and a tool's result."""

    slug: str
    content: Callable[[object], list[dict]]
    tool_calls: Callable[[dict], list[dict]]
    tool_result: Callable[[dict], dict]
    placeholder: Callable[[], dict]  # the block of a turn that would be empty: both providers refuse one

    def of(self, messages: list[dict]) -> tuple[list[str], list[dict]]:
        """(the system and developer messages' texts, the other messages as turns that start with the user's).
        Tool results travel in a user turn; merging puts parallel results and any following user text together."""
        system: list[str] = []
        turns: list[dict] = []
        for message in messages:
            role = message.get("role")
            if role in ("system", "developer"):
                system.append(content_text(message.get("content")))
            elif role == "user":
                append_turn(turns, "user", self.content(message.get("content")), key="content")
            elif role == "assistant":
                blocks = self.content(message.get("content")) + self.tool_calls(message)
                append_turn(turns, "assistant", blocks, key="content")
            elif role == "tool":
                append_turn(turns, "user", [self.tool_result(message)], key="content")
            else:
                raise unsupported(f"message role {role!r}", self.slug)
        if not turns or turns[0]["role"] != "user":
            turns.insert(0, {"role": "user", "content": []})
        for turn in turns:
            if not turn["content"]:
                turn["content"].append(self.placeholder())
        return [text for text in system if text], turns


def last_user_index(messages: list[dict], slug: str) -> int:
    """Where the conversation's latest user turn is: providers that take one "current" message want it."""
    for position in range(len(messages) - 1, -1, -1):
        if messages[position].get("role") == "user":
            return position
    raise RelayError(400, f"{slug} channels need at least one user message", "missing_user_message")


def renamed_numeric_fields(body: dict, names: dict[str, str]) -> dict:
    """The request's numeric sampling fields that are set, under the provider's names."""
    return {
        target: body[name]
        for name, target in names.items()
        if isinstance(body.get(name), int | float) and not isinstance(body.get(name), bool)
    }


def stop_sequences(stop: object) -> list[str]:
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list):
        return [item for item in stop if isinstance(item, str) and item]
    return []


def tool_functions(tools: object) -> list[dict]:
    """The `function` objects of the request's function tools."""
    functions = []
    for tool in tools if isinstance(tools, list) else ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and tool.get("type", "function") == "function":
            functions.append(function)
    return functions


def client_tool_calls(message: dict) -> list[tuple[str, str, dict]]:
    """An assistant message's tool calls as (id, function name, arguments object). Calls that are not an
    object with a `function` object are left out, as content parts that are not objects are."""
    found = []
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            found.append(
                (
                    text_or_empty(call.get("id")),
                    text_or_empty(function.get("name")),
                    tool_arguments(function.get("arguments")),
                )
            )
    return found


def text_or_empty(value: object) -> str:
    return value if isinstance(value, str) else ""


def request_json(body: dict) -> bytes:
    """A provider request built from the client's body, as JSON. Converting nests the client's values deeper
    than they came, and orjson writes at most 254 levels: past that it is the client's 400, not a 500."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        raise RelayError(400, "request body is nested too deeply for this channel", "invalid_body") from None


def tool_arguments(arguments: object) -> dict:
    """An assistant tool call's `arguments` (a JSON string that may be invalid) as an object."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}  # the model produced broken JSON earlier; the provider needs an object regardless
    return parsed if isinstance(parsed, dict) else {}


# --- answers: OpenAI chat completions ---


def json_or_none(content: bytes) -> object:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def openai_tool_call(call_id: str, name: str, arguments: object) -> dict:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments if arguments is not None else {}).decode()},
    }


def assistant_message(text: str, tool_calls: list[dict], reasoning: str = "") -> dict:
    message: dict = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = reasoning  # non-standard, but what clients of gateways expect
    return message


def reasoning_of(delta_or_message: dict) -> str:
    """DeepSeek-style `reasoning_content`, or the `reasoning` some OpenAI-compatible servers send."""
    for name in ("reasoning_content", "reasoning"):
        value = delta_or_message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def usage_object(usage: Usage) -> dict:
    """Usage as OpenAI reports it: `prompt_tokens` counts cached input too, and the cache reads and the
    reasoning are shown inside it when there are any."""
    answer: dict = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cache_read_tokens:
        answer["prompt_tokens_details"] = {"cached_tokens": usage.cache_read_tokens}
    if usage.reasoning_tokens:
        answer["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return answer


def token_count(counts: object, name: str) -> int:
    """One count of a provider's usage object; 0 when it or the object is absent."""
    value = counts.get(name) if isinstance(counts, dict) else None
    return int(value or 0)


def openai_usage(usage: object) -> Usage | None:
    """OpenAI-style usage in each dialect upstreams speak: chat's `prompt_tokens_details.cached_tokens` and
    `completion_tokens_details.reasoning_tokens`, the Responses API's `input_tokens` / `output_tokens` with
    their `*_details`, DeepSeek's `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens`, Moonshot's top-level
    `cached_tokens`. None for a missing or all-zero usage object: both mean "count it ourselves"."""
    if not isinstance(usage, dict):
        return None
    input_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    output_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    cache_hit = token_count(usage, "prompt_cache_hit_tokens")
    found = Usage(
        prompt_tokens=token_count(usage, "prompt_tokens")
        or token_count(usage, "input_tokens")
        or cache_hit + token_count(usage, "prompt_cache_miss_tokens"),
        completion_tokens=token_count(usage, "completion_tokens") or token_count(usage, "output_tokens"),
        cache_read_tokens=token_count(input_details, "cached_tokens")
        or cache_hit
        or token_count(usage, "cached_tokens"),
        reasoning_tokens=token_count(output_details, "reasoning_tokens"),
    )
    return reported_usage(found)


def reported_usage(usage: Usage) -> Usage | None:
    """All-zero usage means the provider did not count: None tells the relay to count locally."""
    return None if usage.is_empty else usage


def completion_body(request: RelayRequest, completion_id: str, choices: list[dict], usage: dict | None) -> bytes:
    """A `chat.completion` answer under the model name the client asked for."""
    body: dict = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return orjson.dumps(body)


def completion_text(message: dict) -> str:
    """Everything in an answer the provider bills as output, for counting tokens when it reports none."""
    pieces = [message.get("content") or "", message.get("reasoning_content") or ""]
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        pieces.append((function.get("name") or "") + (function.get("arguments") or ""))
    return "".join(pieces)


# --- streams: OpenAI chat completion chunks ---


def stream_event(payload: bytes, slug: str) -> dict | None:
    """One provider stream payload as an object; anything but JSON means the stream is broken."""
    event = json_or_none(payload)
    if event is None:
        raise UpstreamFailed(UpstreamFailure(502, f"{slug} sent an invalid stream event", "upstream_error"))
    return event if isinstance(event, dict) else None


class ChunkWriter:
    """Builds the `chat.completion.chunk` payloads of one converted stream.

    All chunks share one id, `created` and the client's model name (kept in the StreamState, where the
    relay reads them for its own usage chunk); the first delta of each choice carries `role`, as OpenAI's
    do. Every delta's text is recorded in the state for local counting should the provider send no usage.
    """

    def __init__(self, request: RelayRequest, state: StreamState) -> None:
        self.request = request
        self.state = state
        self.started_choices: set[int] = set()

    def start(self, chunk_id: str = "") -> None:
        if not self.state.chunk_id:
            self.state.chunk_id = chunk_id or new_completion_id()
            self.state.created = int(time.time())

    def chunk(self, delta: dict, finish_reason: str | None = None, index: int = 0) -> bytes:
        self.start()
        if index not in self.started_choices:
            self.started_choices.add(index)
            delta = {"role": "assistant", **delta}
        self._record(delta)
        payload: dict = {
            "id": self.state.chunk_id,
            "object": "chat.completion.chunk",
            "created": self.state.created,
            "model": self.request.model,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.request.wants_usage:
            payload["usage"] = None  # OpenAI's shape when the totals follow in a chunk of their own
        return orjson.dumps(payload)

    def _record(self, delta: dict) -> None:
        self.state.text_parts.append((delta.get("content") or "") + (delta.get("reasoning_content") or ""))
        for call in delta.get("tool_calls") or ():
            if call.get("id"):
                self.state.max_tool_calls += 1
            function = call.get("function") or {}
            self.state.text_parts.append((function.get("name") or "") + (function.get("arguments") or ""))


class ToolCallDeltas:
    """The tool calls of a stream whose provider sends each call as a content block (Anthropic, Bedrock's
    Converse): its start, its arguments in fragments, its end, as OpenAI tool-call deltas numbered in order."""

    def __init__(self, writer: ChunkWriter) -> None:
        self.writer = writer
        self.index: dict[object, int] = {}  # the provider's block index -> OpenAI's tool call index
        self.with_arguments: set[object] = set()

    def start(self, block: object, call_id: str, name: str) -> list[bytes]:
        position = self.index[block] = len(self.index)
        call = {"index": position, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        return [self.writer.chunk({"tool_calls": [call]})]

    def arguments(self, block: object, fragment: object) -> list[bytes]:
        if block not in self.index or not isinstance(fragment, str) or not fragment:
            return []
        self.with_arguments.add(block)
        return [self.arguments_chunk(block, fragment)]

    def stop(self, block: object) -> list[bytes]:
        if block in self.index and block not in self.with_arguments:
            return [self.arguments_chunk(block, "{}")]  # a call without arguments still needs valid JSON
        return []

    def arguments_chunk(self, block: object, fragment: str) -> bytes:
        return self.writer.chunk({"tool_calls": [{"index": self.index[block], "function": {"arguments": fragment}}]})


# --- rerank: the client-facing format is Jina's (Jina's `/v1/rerank`) ---


def rerank_document_text(document: object) -> str:
    """A rerank document as text: a string, an object's `text`, or any other object as compact JSON."""
    if isinstance(document, str):
        return document
    if isinstance(document, dict) and isinstance(document.get("text"), str):
        return document["text"]
    return orjson.dumps(document).decode()


def rerank_prompt_tokens(request: RelayRequest, measure: Measure) -> int:
    """The query plus every document, each measured on its own."""
    texts = [request.body["query"], *(rerank_document_text(item) for item in request.body["documents"])]
    return sum(measure(text) for text in texts)


def wants_documents(body: dict) -> bool:
    """`return_documents` left out means true: what clients of Jina, whose format we speak, get."""
    return body.get("return_documents") is not False


def rerank_body(request: RelayRequest, model: str) -> dict:
    """The client's Jina-format body for the upstream, with the upstream model and an explicit choice of
    documents (upstreams disagree on the default)."""
    return {**request.body, "model": model, "return_documents": wants_documents(request.body)}


def as_document(document: str | dict) -> dict:
    """A document as the answer shows it: strings become `{"text": ...}`, objects stay as they are."""
    return {"text": document} if isinstance(document, str) else document


def rerank_answer(request: RelayRequest, results: object, reported_tokens: int) -> tuple[bytes, Usage | None, str]:
    """The client's answer: results by descending score, documents only when asked for, and usage.

    `reported_tokens` is what the upstream billed, 0 when it reports none: the answer then shows the
    local count, and the returned usage is None so the relay logs the call as counted locally.
    """
    documents = request.body["documents"]
    with_documents = wants_documents(request.body)
    kept = []
    for result in results if isinstance(results, list) else ():
        index = result.get("index") if isinstance(result, dict) else None
        if not isinstance(index, int) or not 0 <= index < len(documents):
            continue
        score = result.get("relevance_score")
        item: dict = {"index": index, "relevance_score": float(score) if isinstance(score, int | float) else 0.0}
        if with_documents:
            # Some backends (Xinference) return an empty document: the request has the text.
            item["document"] = as_document(result.get("document") or documents[index])
        kept.append(item)
    kept.sort(key=lambda item: -item["relevance_score"])
    if request.body.get("top_n"):
        kept = kept[: request.body["top_n"]]
    shown = Usage(reported_tokens or rerank_prompt_tokens(request, Tokens(request.model)), 0)
    answer = {"model": request.model, "results": kept, "usage": usage_object(shown)}
    return orjson.dumps(answer), Usage(reported_tokens, 0) if reported_tokens else None, ""
