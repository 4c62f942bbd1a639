"""Two real gateway processes on one database (and one Redis in the Redis legs) share a key that covers 20
requests' reservations while 100 requests hit both at once: nothing is overspent and every success is
billed exactly once."""

import asyncio
import math
import threading

import httpx
import pytest
from django.db import connection

from billing.models import ApiKey, DailyUsage, Log, Reservation, User
from relay.tokenizer import count_messages, utf8_bytes
from tests.support.factories import ALICE_QUOTA, make_key
from tests.support.fakes.openai_upstream import Behaviour, FakeOpenAI
from tests.support.live_server import LiveGateway, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend, pytest.mark.cache]

HELLO = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}
# What each request holds while in flight: (prompt bound + max_tokens x completion ratio 4) x model ratio 1.25.
RESERVATION = math.ceil((count_messages(HELLO["messages"], utf8_bytes) + 100 * 4) * 1.25)
REQUESTS, COVERED = 100, 20


@pytest.fixture
def two_gateways(openai_channel, transactional_db):
    production = {"SETTLE_AFTER_ANSWER": "true"}
    first, second = LiveGateway(production), LiveGateway(production)
    yield first, second
    first.stop()
    second.stop()


async def spread(gateways: tuple[LiveGateway, LiveGateway], key: str) -> list[httpx.Response]:
    """REQUESTS chat calls at once, alternating between the two gateways."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=REQUESTS), headers=headers, timeout=60) as client:
        calls = (client.post(f"{gateways[n % 2].url}/v1/chat/completions", json=HELLO) for n in range(REQUESTS))
        return await asyncio.gather(*calls)


class QuotaWatcher(threading.Thread):
    """Samples the key's remain_quota while the requests are in flight; `lowest` is the lowest seen."""

    def __init__(self, token: ApiKey) -> None:
        super().__init__(daemon=True)
        self.token_id, self.lowest, self.done = token.pk, token.remain_quota, threading.Event()

    def run(self) -> None:
        try:
            while not self.done.wait(0.01):
                self.lowest = min(self.lowest, ApiKey.objects.get(pk=self.token_id).remain_quota)
        finally:
            connection.close()

    def __enter__(self) -> "QuotaWatcher":
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.done.set()
        self.join(10)


def test_a_hundred_requests_on_two_instances_never_overspend_and_bill_each_success_once(
    alice, two_gateways, fake_openai: FakeOpenAI
):
    fake_openai.script.extend(Behaviour(delay=0.2) for _ in range(REQUESTS))  # so that they overlap
    token, key = make_key(alice, remain_quota=RESERVATION * COVERED)
    with QuotaWatcher(token) as watcher:
        responses = asyncio.run(spread(two_gateways, key))
    assert watcher.lowest >= 0

    succeeded = [r.headers["X-Request-Id"] for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(succeeded) >= COVERED and len(set(succeeded)) == len(succeeded)
    assert {r.status_code for r in refused} <= {403}
    assert {r.json()["error"]["code"] for r in refused} <= {"insufficient_quota"}

    wait_until(lambda: not Reservation.objects.filter(state=Reservation.State.HELD).exists())  # settled after
    logs = Log.objects.filter(type=Log.Type.CONSUME)
    assert sorted(logs.values_list("request_id", flat=True)) == sorted(succeeded)
    spent = sum(logs.values_list("quota", flat=True))
    token.refresh_from_db()
    assert token.remain_quota >= 0 and (token.remain_quota, token.used_quota) == (RESERVATION * COVERED - spent, spent)
    assert User.objects.get(pk=alice.pk).quota == ALICE_QUOTA - spent
    usage = DailyUsage.objects.get(token_id=token.pk)
    assert (usage.requests, usage.quota) == (len(succeeded), spent)
