"""A fake Dify app API: `/v1/chat-messages` in blocking mode (one message object) or streaming mode (SSE:
a chatflow's workflow and node events around the message deltas, a ping, then message_end with usage).
Errors are `{"code", "message", "status"}`, in the HTTP body or as an `error` stream event."""

from aiohttp import web

from tests.support.fakes.recording import Behaviour, RecordingFake, pieces_until, sse, stream_lines

APP_KEY = "app-fakeDifyAppKey"
ANSWER_PIECES = ["Lis", "bon."]
ANSWER = "".join(ANSWER_PIECES)
PROMPT_TOKENS = 120
COMPLETION_TOKENS = 3
WORKFLOW_ID = "wf-9"
MESSAGE_ID = "m-1"
INVALID_KEY = {"code": "unauthorized", "message": "Access token is invalid", "status": 401}
QUOTA_ERROR = {
    "code": "provider_quota_exceeded",
    "message": "Your quota for Dify Hosted Model Provider has been exhausted.",
}


def usage(behaviour: Behaviour) -> dict:
    if not behaviour.usage:
        return {}
    total = PROMPT_TOKENS + COMPLETION_TOKENS
    return {"usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": total}}


def ids() -> dict:
    return {"task_id": "t-1", "message_id": MESSAGE_ID, "conversation_id": "c-1"}


def workflow(event: str, **data) -> dict:
    return {"event": event, "task_id": "t-1", "workflow_run_id": "r-1", "data": {"workflow_id": WORKFLOW_ID, **data}}


def node(event: str, **data) -> dict:
    return workflow(event, id="n-1", node_id="1711", node_type="llm", title="LLM", **data)


class FakeDify(RecordingFake):
    api_key = APP_KEY
    auth_error = INVALID_KEY

    async def answer(self, request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
        if body["response_mode"] == "blocking":
            answer = {"event": "message", **ids(), "mode": "chat", "answer": ANSWER, "metadata": usage(behaviour)}
            return web.json_response(answer)
        pieces, whole = pieces_until(ANSWER_PIECES, behaviour)
        events = [workflow("workflow_started", sequence_number=7), node("node_started", index=2)]
        events += [{"event": "message", **ids(), "answer": piece} for piece in pieces]
        if behaviour.error_after is not None:
            events.append({"event": "error", **ids(), "status": 400, **QUOTA_ERROR})
        elif whole:
            events += [
                node("node_finished", status="succeeded", elapsed_time=0.9),
                workflow("workflow_finished", status="succeeded", total_tokens=123),
                {"event": "message_end", **ids(), "metadata": usage(behaviour)},
            ]
        lines = sse(events)
        lines.insert(2, b"event: ping\n\n")
        return await stream_lines(request, "text/event-stream", lines)
