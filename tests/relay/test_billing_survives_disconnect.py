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
from billing.models import ApiKey, Log, Reservation, User
from relay import tokenizer
from tests.support.asgi_harness import RoutedCall
from tests.support.factories import ALICE_QUOTA
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.relay_client import HELLO

pytestmark = pytest.mark.django_db(transaction=True)

KEY_QUOTA = 5_000_000  # tests.support.factories.make_key's default


def chat(key: str, body: dict) -> RoutedCall:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return RoutedCall("/v1/chat/completions", orjson.dumps(body), headers)


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
    assert (await ApiKey.objects.aget()).remain_quota == KEY_QUOTA - log.quota
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
    client = chat(alice_key, body)
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
    client = chat(alice_key, {**HELLO, "stream": True})

    async def hang_up_after_three_events(message: dict) -> None:
        if client.received.count(b"data: ") >= 3:
            client.hang_up.set()

    client.take = hang_up_after_three_events
    await client.run()
    log = await settled_once("client disconnected")
    assert log.completion_tokens == tokenizer.count_text("gpt-4o", delivered_text(client.received)) > 0


async def test_a_client_hanging_up_while_a_whole_answer_is_counted_is_billed(
    alice_key, openai_channel, fake_openai, cold_tokenizer
):
    fake_openai.script.append(Behaviour(usage=False))
    client = chat(alice_key, HELLO)
    cold_tokenizer.on_build = client.hang_up.set
    await client.run()
    assert client.received == b""  # the answer never reached the client
    log = await settled_once("usage counted locally (upstream reported none)")
    assert log.completion_tokens == tokenizer.count_text("gpt-4o", "Hello from the fake upstream!")


async def test_a_stream_the_client_left_before_its_first_write_is_billed(alice_key, openai_channel, fake_openai):
    client = chat(alice_key, {**HELLO, "stream": True})

    async def hang_up_instead_of_taking_it(message: dict) -> None:
        client.hang_up.set()
        await asyncio.Event().wait()

    client.take = hang_up_instead_of_taking_it  # the status and headers: the body's iteration never starts
    await client.run()
    log = await settled_once("client disconnected")
    assert log.completion_tokens == 0 < log.prompt_tokens
