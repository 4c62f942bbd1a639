"""A gateway process killed in the middle of a stream: nothing could settle its reservation, so the quota
stays held until the reconciler releases it, once, giving the key and the user back exactly what was held."""

import signal
from datetime import timedelta

import httpx
import pytest
from django.conf import settings
from django.utils import timezone

from billing.models import ApiKey, Log, Reservation, User
from tasks.jobs import periodic_jobs
from tests.support.factories import ALICE_QUOTA, make_channel, make_key
from tests.support.fakes import faulty_upstream as fake
from tests.support.fakes.faulty_upstream import FaultyUpstream
from tests.support.live_server import LiveGateway, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

BOUND = 30  # seconds
KEY_QUOTA = 5_000_000


def test_a_stream_cut_by_a_killed_gateway_is_released_by_the_reconciler_exactly_once(alice):
    upstream = FaultyUpstream().start()
    upstream.reset(fake.HANG_MID_STREAM, chunks=3)  # still answering (silently) when the gateway dies
    make_channel(upstream.url)
    token, key = make_key(alice, remain_quota=KEY_QUOTA)
    gateway = LiveGateway()
    try:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=BOUND) as r:
            events = (line for line in r.iter_lines() if line.startswith("data: "))
            assert "Hello" in next(events) + next(events)  # the role chunk and a word: the stream is under way
            gateway.process.send_signal(signal.SIGKILL)
            gateway.process.wait(BOUND)
            with pytest.raises(httpx.HTTPError):  # the chunked body ends without its last chunk
                list(events)
    finally:
        gateway.stop()

    held = Reservation.objects.get()
    assert held.state == "held"
    assert User.objects.get(pk=alice.pk).quota == ALICE_QUOTA - held.amount
    assert ApiKey.objects.get(pk=token.pk).remain_quota == KEY_QUOTA - held.amount
    wait_until(lambda: not upstream.open_connections, BOUND)  # the kernel closed the dead process's socket
    assert upstream.hung_up == 1

    # The row is as old as a request that died RESERVATION_STALE_SECONDS ago.
    Reservation.objects.update(created_at=timezone.now() - timedelta(seconds=settings.RESERVATION_STALE_SECONDS + 1))
    reconcile = next(job for job in periodic_jobs() if job.name == "release_stale_reservations")
    assert reconcile.run() == 1
    assert reconcile.run() == 0
    assert Reservation.objects.get().state == "released"
    user, token = User.objects.get(pk=alice.pk), ApiKey.objects.get(pk=token.pk)
    assert (user.quota, user.used_quota) == (ALICE_QUOTA, 0)
    assert (token.remain_quota, token.used_quota) == (KEY_QUOTA, 0)
    assert not Log.objects.filter(type="consume").exists()
