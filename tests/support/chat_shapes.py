"""OpenAI chat answers and stream chunks as the adaptors hand them to an inbound format's converter."""

MODEL = "gpt-4o"


def completion(message: dict, finish_reason: str = "stop", usage: dict | None = None) -> dict:
    """A whole chat completion with one choice holding `message` (the assistant role is added)."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
        "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def chunk(delta: dict | None = None, finish_reason: str | None = None, usage: dict | None = None) -> dict:
    """A stream chunk; without a delta it has no choice (the usage-only chunk that ends a stream)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": MODEL, "choices": choices, "usage": usage}


def tool_delta(index: int, arguments: str, call_id: str = "", name: str = "") -> dict:
    """A delta with a fragment of tool call `index`; its first fragment names the call (`call_id`, `name`)."""
    call: dict = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}
