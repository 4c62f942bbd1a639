"""Channel secrets never leave: an upstream that quotes back the key, its parts or any credential it was sent
(the Authorization value, Vertex's access token, a Zhipu JWT, `key=`) puts none of them into the client's
answer, a log row (error, manage), the channel's status_reason or the server log, whole or streamed, through
the relay, the channel test and a task submit."""

import json
import logging
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web
from asgiref.sync import async_to_sync

from billing.models import Log
from channels_app.models import Channel
from gateway_project.db import run_db
from relay.adaptors.base import MASK
from relay.channel_test import probe_channel
from tests.support.factories import make_channel
from tests.support.fakes import vertex_upstream
from tests.support.fakes.server import serve
from tests.support.relay_client import post_chat, sse_payloads
from tests.support.task_world import post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key", "mj-api-secret")
FIRST_CHUNK = {
    "id": "chatcmpl-echo",
    "object": "chat.completion.chunk",
    "created": 1717000000,
    "model": "gpt-4o",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}],
}


@dataclass
class EchoingUpstream:
    """Refuses every request with OpenAI's error object quoting the credentials it was sent, and whatever
    `quote` holds (the key as an upstream saw it); or, for a stream with `mid_stream`, sends one chunk and
    then that error as an event."""

    status: int = 401
    mid_stream: bool = False
    quote: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # the credentials it was sent
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        sent = [value for name, value in request.headers.items() if name.lower() in CREDENTIAL_HEADERS]
        credentials = sent + [value.partition(" ")[2] for value in sent] + request.query.getall("key", [])
        self.seen.extend(credential for credential in credentials if credential)
        quoted = ", ".join(self.quote + sent + [request.query_string])
        error = {"error": {"message": f"Incorrect API key provided: {quoted}", "type": "invalid_request_error"}}
        if not (self.mid_stream and body.get("stream")):
            return web.json_response(error, status=self.status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in (FIRST_CHUNK, error):
            await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
        return response


@pytest.fixture(scope="module")
def echo_server() -> EchoingUpstream:
    echo = EchoingUpstream()
    echo.port = serve(lambda app: app.router.add_post("/{tail:.*}", echo.handle))
    return echo


@pytest.fixture
def echo(echo_server: EchoingUpstream) -> EchoingUpstream:
    echo_server.status, echo_server.mid_stream, echo_server.quote = 401, False, []
    echo_server.seen.clear()
    return echo_server


OPENAI_KEY = "sk-channel-secret-0123456789"
ZHIPU_ID, ZHIPU_SECRET = "zhipu-api-id-0042", "zhipu-signing-secret-0042"
LLAMA = "llama3-405b-instruct-maas"  # Vertex's OpenAI-compatible family: errors and streams in OpenAI's shape


@dataclass
class Leaky:
    """A channel on the echoing upstream, the model it serves, and the secrets it must keep."""

    channel: Channel
    model: str
    secrets: list[str]


@pytest.fixture(params=["openai", "azure", "anthropic", "gemini", "zhipu", "vertex"])
def leaky(request, echo: EchoingUpstream, transactional_db) -> Leaky:
    kind = request.param
    if kind == "vertex":
        key = request.getfixturevalue("account_json")
        account = json.loads(key)
        channel = make_channel(echo.url, models=[LLAMA], key=key, type="vertex")
        echo.quote = [key, account["private_key"], account["private_key_id"]]
        return Leaky(channel, LLAMA, [key, account["private_key"].splitlines()[1], vertex_upstream.PRIVATE_KEY_ID])
    if kind == "zhipu":
        key = f"{ZHIPU_ID}.{ZHIPU_SECRET}"
        echo.quote = [key, ZHIPU_SECRET]
        return Leaky(make_channel(echo.url, models=["glm-4"], key=key, type="zhipu"), "glm-4", [ZHIPU_ID, ZHIPU_SECRET])
    echo.quote = [OPENAI_KEY]
    model = (
        "claude-3-5-sonnet-20241022" if kind == "anthropic" else "gemini-2.0-flash" if kind == "gemini" else "gpt-4o"
    )
    return Leaky(make_channel(echo.url, models=[model], key=OPENAI_KEY, type=kind), model, [OPENAI_KEY])


def written_anywhere(answer: bytes, caplog: pytest.LogCaptureFixture) -> str:
    """The client's answer, every log row, every channel's status_reason and the server log."""
    rows = [row.content for row in Log.objects.all()]
    reasons = list(Channel.objects.values_list("status_reason", flat=True))
    return "\n".join([answer.decode(), caplog.text, *rows, *reasons])


async def assert_kept(secrets: list[str], echo: EchoingUpstream, answer: bytes, caplog) -> None:
    written = await run_db(written_anywhere, answer, caplog)
    assert echo.seen, "the upstream was never called"
    for secret in secrets + echo.seen:
        assert secret not in written
    assert f"Incorrect API key provided: {MASK}" in written  # the upstream's own words are kept


def chat(model: str, stream: bool) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


async def read(response) -> bytes:
    streamed = response.status_code == 200 and response.get("Content-Type") == "text/event-stream"
    return b"\n".join(await sse_payloads(response)) if streamed else response.content


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_refusal_quoting_the_credentials_reaches_no_answer_log_or_status_reason(
    stream, leaky, echo, alice_key, caplog
):
    caplog.set_level(logging.DEBUG)
    response = await post_chat(alice_key, chat(leaky.model, stream))
    assert response.status_code == 401
    channel = await Channel.objects.aget(pk=leaky.channel.pk)
    assert channel.status == Channel.Status.AUTO_DISABLED  # so its reason and a manage log were written
    await assert_kept(leaky.secrets, echo, await read(response), caplog)


@pytest.mark.parametrize("leaky", ["openai", "azure", "zhipu", "vertex"], indirect=True)  # OpenAI's stream format
async def test_an_error_event_mid_stream_quoting_the_credentials_reaches_no_answer_or_log(
    leaky, echo, alice_key, caplog
):
    echo.mid_stream = True
    caplog.set_level(logging.DEBUG)
    response = await post_chat(alice_key, chat(leaky.model, stream=True))
    assert response.status_code == 200
    answer = await read(response)
    assert b"stream_interrupted" in answer
    await assert_kept(leaky.secrets, echo, answer, caplog)


def test_the_channel_test_reports_a_refusal_without_the_credentials(leaky, echo, caplog):
    caplog.set_level(logging.DEBUG)
    result = probe_channel(leaky.channel)
    assert not result.success and result.permanent
    async_to_sync(assert_kept)(leaky.secrets, echo, result.message.encode(), caplog)


MJ_SECRET = "mj-proxy-secret-0042"


@pytest.mark.parametrize("status, answered", [(400, 400), (401, 502)])
async def test_a_task_submit_refused_with_the_credential_quoted_keeps_it(
    status, answered, echo, alice_key, caplog, transactional_db
):
    """A 400 goes back to the client as the upstream gave it; a 401 disables the channel with its message."""
    echo.status = status
    await run_db(make_channel, echo.url, models=["mj_*"], key=MJ_SECRET, type="midjourney")
    caplog.set_level(logging.DEBUG)
    response = await post("/mj/submit/imagine", alice_key, {"prompt": "a lighthouse at dusk"})
    assert response.status_code == answered
    await assert_kept([MJ_SECRET], echo, response.content, caplog)
