"""An answered request is always billed: a client that hangs up while its charge is being worked out (the
first local count of a process builds the tokenizer table, about a second) cannot cancel the charge, however
its stream ended. Requests go through the production routing in process (RelayHandler), which cancels the
serving task when the client hangs up, as it does behind a real server."""

import asyncio
from collections.abc import Callable

import orjson
import pytest
from django.test import override_settings

from billing import settlement
from billing.models import Log, Reservation, Token, User
from relay import tokenizer
from tests.asgi_harness import Gateway
from tests.conftest import ALICE_QUOTA
from tests.fakes.openai_upstream import Behaviour
from tests.relay_client import HELLO

pytestmark = pytest.mark.django_db(transaction=True)

KEY_QUOTA = 5_000_000  # tests.conftest.make_key's default


class Client:
    """One request whose client hangs up when `hang_up` is set, reading every write until then."""

    def __init__(self, key: str, body: dict) -> None:
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.body = orjson.dumps(body)
        self.hang_up = asyncio.Event()
        self.received = b""
        self.start_sent = asyncio.Event()
        self.on_body: Callable[[bytes], None] = lambda received: None
        self.body_requested = False

    async def receive(self) -> dict:
        if not self.body_requested:
            self.body_requested = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.start_sent.set()
        elif message["type"] == "http.response.body":
            self.received += message.get("body", b"")
            self.on_body(self.received)

    async def run(self) -> None:
        await asyncio.wait_for(Gateway().app(self.scope, self.receive, self.send), 20)


class ColdTokenizer:
    """No encoding built yet, as in a fresh process; `on_build` runs on the event loop when a count starts
    building one (on a worker thread), so a test can hang up while the count is under way."""

    def __init__(self, loop: asyncio.AbstractEventLoop, build: Callable) -> None:
        self.loop = loop
        self.real_build = build
        self.on_build: Callable[[], None] = lambda: None

    def build(self, name: str):
        self.loop.call_soon_threadsafe(self.on_build)
        return self.real_build(name)


@pytest.fixture
async def cold_tokenizer(monkeypatch) -> ColdTokenizer:
    cold = ColdTokenizer(asyncio.get_running_loop(), tokenizer._build)
    monkeypatch.setattr(tokenizer, "_built", {})
    monkeypatch.setattr(tokenizer, "_build", cold.build)
    return cold


async def settled_once(rule: str) -> Log:
    """The one consume log, once every settlement started has finished; its reservation was settled (not left
    to the reconciler) and the key and user paid exactly what it says."""
    await settlement.drain()
    [log] = [log async for log in Log.objects.filter(type=Log.Type.CONSUME)]
    assert log.content.startswith(rule), log.content
    reservation = await Reservation.objects.aget(request_id=log.request_id)
    assert reservation.state == Reservation.State.SETTLED
    assert (await User.objects.aget(username="alice")).quota == ALICE_QUOTA - log.quota
    assert (await Token.objects.aget()).remain_quota == KEY_QUOTA - log.quota
    return log


def delivered_text(received: bytes) -> str:
    chunks = [orjson.loads(event[6:]) for event in received.split(b"\n\n") if event.startswith(b"data: {")]
    return "".join(
        choice.get("delta", {}).get("content") or "" for chunk in chunks for choice in chunk.get("choices") or ()
    )


ENDINGS = [
    # upstream behaviour, the client asks for a usage chunk, rule
    (Behaviour(usage=False), False, "stream ended normally, no usage from upstream: counted locally"),
    (Behaviour(usage=False), True, "stream ended normally, no usage from upstream: counted locally"),
    (Behaviour(usage=False, die_after=3), False, "upstream failed mid-stream"),
    (Behaviour(usage=False, stall_after=2), False, "upstream idle longer than STREAMING_TIMEOUT"),
]


@override_settings(STREAMING_TIMEOUT=0.5)
@pytest.mark.parametrize(
    "behaviour, wants_usage, rule", ENDINGS, ids=["normal", "normal-usage-chunk", "upstream-error", "idle"]
)
async def test_a_client_hanging_up_while_the_end_of_its_stream_is_counted_is_billed(
    alice_key, openai_channel, fake_openai, cold_tokenizer, behaviour, wants_usage, rule
):
    fake_openai.script.append(behaviour)
    body = {**HELLO, "stream": True, **({"stream_options": {"include_usage": True}} if wants_usage else {})}
    client = Client(alice_key, body)
    cold_tokenizer.on_build = client.hang_up.set
    await client.run()
    assert client.hang_up.is_set()  # the count had started when the client left
    log = await settled_once(rule)
    assert log.prompt_tokens > 0
    assert log.completion_tokens >= tokenizer.count_text("gpt-4o", delivered_text(client.received)) > 0


async def test_a_client_hanging_up_mid_stream_is_billed_for_what_was_delivered(
    alice_key, openai_channel, fake_openai, cold_tokenizer
):
    fake_openai.script.append(Behaviour(usage=False, chunk_delay=0.2))
    client = Client(alice_key, {**HELLO, "stream": True})
    client.on_body = lambda received: received.count(b"data: ") >= 3 and client.hang_up.set()
    await client.run()
    log = await settled_once("client disconnected")
    assert log.completion_tokens == tokenizer.count_text("gpt-4o", delivered_text(client.received)) > 0


async def test_a_client_hanging_up_while_a_whole_answer_is_counted_is_billed(
    alice_key, openai_channel, fake_openai, cold_tokenizer
):
    fake_openai.script.append(Behaviour(usage=False))
    client = Client(alice_key, HELLO)
    cold_tokenizer.on_build = client.hang_up.set
    await client.run()
    assert client.received == b""  # the answer never reached the client
    log = await settled_once("usage counted locally (upstream reported none)")
    assert log.completion_tokens == tokenizer.count_text("gpt-4o", "Hello from the fake upstream!")


async def test_a_stream_the_client_left_before_its_first_write_is_billed(alice_key, openai_channel, fake_openai):
    client = Client(alice_key, {**HELLO, "stream": True})

    async def hang_up_once_the_answer_starts() -> dict:
        if not client.body_requested:
            client.body_requested = True
            return {"type": "http.request", "body": client.body, "more_body": False}
        await client.start_sent.wait()
        return {"type": "http.disconnect"}

    async def a_socket_that_takes_no_write(message: dict) -> None:
        client.start_sent.set()
        await asyncio.Event().wait()

    client.receive, client.send = hang_up_once_the_answer_starts, a_socket_that_takes_no_write
    await client.run()
    log = await settled_once("client disconnected")
    assert log.completion_tokens == 0 < log.prompt_tokens
