"""The ledger adds up under a concurrent mix of requests whose clients hang up at random points: streams and
whole answers, from upstreams that answer normally, cut their stream, answer slowly or report no usage, to
a fresh server (its tokenizer table not built yet, as on the first requests after `make run`). Afterwards
the consume logs add up to the quota taken from the user and from the key, to the unit, and no reservation
is held: every answered request was settled, every other one released.
"""

import asyncio
import contextlib
import random
import time

import httpx
import pytest

from billing.models import ApiKey, Log, Reservation, User
from tests.support.factories import ALICE_QUOTA
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.live_server import LiveGateway, wait_until
from tests.support.relay_client import HELLO

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

REQUESTS = 240
AT_ONCE = 24
KEY_QUOTA = 5_000_000  # tests.support.factories.make_key's default
UPSTREAMS = [
    Behaviour(),
    Behaviour(usage=False),
    Behaviour(die_after=3, chunk_delay=0.02),  # a stream cut short; a whole answer comes whole
    Behaviour(delay=0.1, chunk_delay=0.05),
    Behaviour(usage=False, delay=0.05, chunk_delay=0.05),
]


async def call(gateway: LiveGateway, key: str, rng: random.Random) -> None:
    """One request, as a stream or not, whose client reads it all, hangs up after a few events, or gives
    up after a while, whatever it got by then."""
    stream = rng.random() < 0.6
    events_read = rng.choice([None, 0, 1, 2, 4, 6])
    patience = rng.choice([None, None, rng.uniform(0, 0.4)])
    headers = {"Authorization": f"Bearer {key}"}

    async def read() -> None:
        body = {**HELLO, "stream": stream}
        async with (
            httpx.AsyncClient(timeout=30) as client,
            client.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, headers=headers) as answer,
        ):
            events = 0
            async for line in answer.aiter_lines():
                events += line.startswith("data: ")
                if stream and events_read is not None and events >= events_read:
                    return  # hangs up: the connection closes with the answer unread

    with contextlib.suppress(TimeoutError):  # gives up: the same
        await asyncio.wait_for(read(), patience)


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_the_ledger_adds_up_when_clients_hang_up_at_random(alice, alice_key, openai_channel, fake_openai, server):
    rng = random.Random(18)
    fake_openai.script.extend(rng.choice(UPSTREAMS) for _ in range(REQUESTS))
    gateway = LiveGateway({"SETTLE_AFTER_ANSWER": "true", "STREAMING_TIMEOUT": "2"}, server=server)

    async def mix() -> None:
        slots = asyncio.Semaphore(AT_ONCE)

        async def one() -> None:
            async with slots:
                await call(gateway, alice_key, rng)

        await asyncio.gather(*(one() for _ in range(REQUESTS)))

    try:
        asyncio.run(mix())
        time.sleep(1)  # the server sees the last hang-ups, and the reservations they were making
        wait_until(
            lambda: not Reservation.objects.filter(state=Reservation.State.HELD).exists(),
            what="a reservation is still held",
        )
    finally:
        gateway.stop()
    logs = Log.objects.filter(type=Log.Type.CONSUME)
    billed = sum(logs.values_list("quota", flat=True))
    user, key = User.objects.get(pk=alice.pk), ApiKey.objects.get()
    settled = Reservation.objects.filter(state=Reservation.State.SETTLED)
    released = Reservation.objects.filter(state=Reservation.State.RELEASED)
    print(
        f"\n{server}: {REQUESTS} requests, {logs.count()} consume logs ({logs.filter(is_stream=True).count()} streams)"
        f" billing {billed} quota, {released.count()} reservations released; taken from the user"
        f" {ALICE_QUOTA - user.quota}, from the key {KEY_QUOTA - key.remain_quota}"
    )
    assert ALICE_QUOTA - user.quota == KEY_QUOTA - key.remain_quota == billed
    assert user.used_quota == key.used_quota == billed
    assert logs.count() == settled.count() > REQUESTS / 2
    assert set(logs.values_list("request_id", flat=True)) == set(settled.values_list("request_id", flat=True))
    assert logs.filter(content__startswith="client disconnected").exists()  # clients did hang up mid-stream
