"""A fake Cohere API: `/v1/chat` (whole, or the NDJSON event stream: stream-start, text-generation,
stream-end carrying the response and its billed units) and `/v1/rerank` (billed in search units).
Errors are `{"message": "..."}`."""

from aiohttp import web

from tests.support.fakes.recording import Behaviour, RecordingFake, ndjson, pieces_until, rerank_results, stream_lines

API_KEY = "co-upstream-secret"
REPLY_PIECES = ["Lis", "bon."]
REPLY = "".join(REPLY_PIECES)
INPUT_TOKENS = 12
OUTPUT_TOKENS = 2
GENERATION_ID = "c3d4-generation"
INVALID_TOKEN = {"message": "invalid api token"}


def response(body: dict, behaviour: Behaviour) -> dict:
    units = {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS} if behaviour.usage else {}
    return {
        "response_id": "a1b2-response",
        "text": REPLY,
        "generation_id": GENERATION_ID,
        "chat_history": [*body.get("chat_history", []), {"role": "CHATBOT", "message": REPLY}],
        "finish_reason": behaviour.finish_reason or "COMPLETE",
        "meta": {"api_version": {"version": "1"}, "billed_units": units, "tokens": {"input_tokens": 78}},
    }


class FakeCohere(RecordingFake):
    api_key = API_KEY
    auth_error = INVALID_TOKEN

    async def answer(self, request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
        if request.path == "/v1/rerank":
            results = rerank_results(body, body.get("return_documents", False))
            meta = {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}}
            return web.json_response({"id": "8f2c-rerank", "results": results, "meta": meta})
        if not body.get("stream"):
            return web.json_response(response(body, behaviour))
        pieces, whole = pieces_until(REPLY_PIECES, behaviour)
        events = [{"is_finished": False, "event_type": "stream-start", "generation_id": GENERATION_ID}]
        events += [{"is_finished": False, "event_type": "text-generation", "text": piece} for piece in pieces]
        if whole:
            end = response(body, behaviour)
            events.append(
                {
                    "is_finished": True,
                    "event_type": "stream-end",
                    "finish_reason": end["finish_reason"],
                    "response": end,
                }
            )
        return await stream_lines(request, "application/stream+json", ndjson(events))
