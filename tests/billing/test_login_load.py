"""Logins sent at once to the real server: password hashing (PBKDF2, a quarter to half a second of a core
each) must not starve everyone else's requests, and the lockout holds however many arrive together.

Timed, because the issue asks for a bound: while the logins run, /api/status (asked every 20 ms) answers
within 100 ms. The assertions are looser than that (median under 50 ms, nine in ten under 100 ms) since
this machine's two cores are shared with other test runs; with 20 password checks at once, as before
logins were throttled by counting attempts and checked one at a time, the median was 120 to 310 ms."""

import math
import statistics
import threading
import time

import httpx
import pytest

from tests.support.live_server import LiveGateway

pytestmark = [pytest.mark.django_db(transaction=True)]

LOGINS = 20
POLL_SECONDS = 0.02


def login(base_url: str, password: str, start: threading.Barrier | None = None) -> int:
    """One console login as root, CSRF token included, sent once `start` lets it; the status of the POST
    (302 logged in, 200 the form again)."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        token = client.get("/accounts/login/").cookies["csrftoken"]
        form = {"login": "root", "password": password, "csrfmiddlewaretoken": token}
        if start is not None:
            start.wait()
        return client.post("/accounts/login/", data=form).status_code


def status_latencies_during(base_url: str, passwords: list[str]) -> tuple[list[float], list[int]]:
    """Seconds each /api/status took, asked every POLL_SECONDS while logins with `passwords` run at once;
    the logins' statuses."""
    start = threading.Barrier(len(passwords) + 1)
    statuses = [0] * len(passwords)

    def attempt(number: int) -> None:
        statuses[number] = login(base_url, passwords[number], start)

    threads = [threading.Thread(target=attempt, args=(number,)) for number in range(len(passwords))]
    for thread in threads:
        thread.start()
    latencies = []
    with httpx.Client(base_url=base_url, timeout=30) as probe:
        probe.get("/api/status")
        start.wait()
        while any(thread.is_alive() for thread in threads):
            sent = time.perf_counter()
            assert probe.get("/api/status").status_code == 200
            latencies.append(time.perf_counter() - sent)
            time.sleep(POLL_SECONDS)
    for thread in threads:
        thread.join()
    return latencies, statuses


def percentile(values: list[float], share: float) -> float:
    """Nearest rank: the least value that `share` of all values do not exceed."""
    return sorted(values)[math.ceil(len(values) * share) - 1]


def check_responsive(latencies: list[float], what: str) -> None:
    median, p90 = statistics.median(latencies), percentile(latencies, 0.9)
    print(
        f"\n{what}: {len(latencies)} /api/status: median {median * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    assert median < 0.05 and p90 < 0.1


def test_twenty_right_logins_at_once_all_succeed_while_status_keeps_answering(root):
    # A limit no burst reaches, so that every one of the logins has its password checked.
    gateway = LiveGateway({"LOGIN_MAX_FAILURES": "100"})
    try:
        latencies, statuses = status_latencies_during(gateway.url, ["root-pass"] * LOGINS)
    finally:
        gateway.stop()
    assert statuses == [302] * LOGINS
    check_responsive(latencies, f"{LOGINS} right passwords")


def test_twenty_wrong_passwords_and_the_right_one_at_once_leave_the_account_locked(root):
    gateway = LiveGateway()
    try:
        latencies, statuses = status_latencies_during(gateway.url, ["wrong"] * LOGINS + ["root-pass"])
        assert statuses.count(302) <= 1
        assert login(gateway.url, "root-pass") == 200  # locked out, the right password too
    finally:
        gateway.stop()
    check_responsive(latencies, f"{LOGINS} wrong passwords and the right one")
