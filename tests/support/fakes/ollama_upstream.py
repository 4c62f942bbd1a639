"""A fake Ollama server: native `/api/chat` (NDJSON stream unless `stream` is false, as Ollama defaults)
and `/api/embed`. Ollama has no auth; errors are `{"error": "..."}`."""

from aiohttp import web

from tests.support.fakes.recording import Behaviour, RecordingFake, ndjson, pieces_until, stream_lines

MODEL = "llama3.2"
REPLY_PIECES = ["A ", "cat", "."]
REPLY = "".join(REPLY_PIECES)
PROMPT_EVAL_COUNT = 26
EVAL_COUNT = 3
EMBED_PROMPT_COUNT = 8
TOOL_CALL = {"function": {"name": "lookup_weather", "arguments": {"city": "Lisbon"}}}
NOT_FOUND = {"error": "model 'missing' not found, try pulling it first"}


def vector(position: int) -> list[float]:
    return [0.25 * (position + 1), -0.5]


def final(body: dict, behaviour: Behaviour, content: str) -> dict:
    message: dict = {"role": "assistant", "content": content}
    if behaviour.tool_call:
        message["tool_calls"] = [TOOL_CALL]
    counts = {"prompt_eval_count": PROMPT_EVAL_COUNT, "eval_count": EVAL_COUNT} if behaviour.usage else {}
    return {
        "model": body["model"],
        "created_at": "2024-11-01T10:00:00.3Z",
        "message": message,
        "done": True,
        "done_reason": behaviour.finish_reason or "stop",
        "total_duration": 812000000,
        **counts,
    }


class FakeOllama(RecordingFake):
    async def answer(self, request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
        if request.path == "/api/embed":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            embeddings = [vector(position) for position in range(len(inputs))]
            return web.json_response(
                {"model": body["model"], "embeddings": embeddings, "prompt_eval_count": EMBED_PROMPT_COUNT}
            )
        if not body.get("stream", True):
            return web.json_response(final(body, behaviour, "" if behaviour.tool_call else REPLY))
        pieces, whole = pieces_until([] if behaviour.tool_call else REPLY_PIECES, behaviour)
        lines = [
            {"model": body["model"], "message": {"role": "assistant", "content": piece}, "done": False}
            for piece in pieces
        ]
        if behaviour.error_after is not None:
            lines.append({"error": "an error was encountered while running the model"})
        elif whole:
            lines.append(final(body, behaviour, ""))
        return await stream_lines(request, "application/x-ndjson", ndjson(lines))
