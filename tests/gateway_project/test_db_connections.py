"""A server process holds at most DB_THREADS + SITE_THREADS database connections (+1 for the embedded jobs),
however many requests it serves and however many come at once.

Django's ASGI handler ran each admin/console/API request on a thread of its own, whose persistent connection
outlived it: 1,000 requests with bad tokens left well over a hundred connections open.
"""

import concurrent.futures
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from billing.models import AccessToken
from billing.payments import redemptions
from tests.support.factories import ALICE_QUOTA
from tests.support.live_server import LiveGateway

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

THREADS = {"DB_THREADS": "2", "SITE_THREADS": "2"}
BOUND = 2 + 2 + 1  # the relay's threads, the site's, the embedded periodic jobs' thread


def in_parallel(calls: list, workers: int) -> set[int]:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return set(pool.map(lambda call: call().status_code, calls))


def most_connections_during(gateway: LiveGateway, work: Callable[[], None]) -> int:
    """The most database connections the server held while `work` ran, and once it was done."""
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, gateway.database_connections())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        work()
    finally:
        done.set()
        sampler.join()
    return max(peak, gateway.database_connections())


@pytest.mark.parametrize("server", ["daphne", "uvicorn", "granian"])
def test_connections_stay_within_the_configured_threads(alice, root, server):
    token = AccessToken.issue(alice)[1]
    signed_in = {"Authorization": f"Bearer {token}"}
    codes = redemptions.create_batch("gift", 10, 50, actor=root)
    gateway = LiveGateway(THREADS, server=server)
    client = httpx.Client(base_url=gateway.url, timeout=60, limits=httpx.Limits(max_connections=100))

    def bad_tokens() -> None:
        calls = [lambda n=n: client.get("/api/me", headers={"Authorization": f"Bearer bad-{n}"}) for n in range(300)]
        assert in_parallel(calls, 20) == {401}

    def bad_keys() -> None:
        calls = [lambda n=n: client.get("/v1/models", headers={"Authorization": f"Bearer sk-{n}"}) for n in range(100)]
        assert in_parallel(calls, 20) == {401}

    def redeeming() -> None:
        # One after another: concurrent redemptions of one user deadlock on MariaDB (a 500), whatever the server.
        calls = [lambda code=code: client.post("/api/redeem", json={"key": code}, headers=signed_in) for code in codes]
        assert in_parallel(calls, 1) == {200}

    def signed_in_all_at_once() -> None:
        assert in_parallel([lambda: client.get("/api/me", headers=signed_in)] * 100, 100) == {200}

    try:
        held = [
            most_connections_during(gateway, work) for work in (bad_tokens, bad_keys, redeeming, signed_in_all_at_once)
        ]
    finally:
        client.close()
        gateway.stop()
    assert max(held) <= BOUND, held
    alice.refresh_from_db()
    assert alice.quota == ALICE_QUOTA + 50 * 10
