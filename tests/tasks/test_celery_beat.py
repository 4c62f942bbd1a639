"""A real Celery beat and a real worker (subprocesses, Redis broker, the test database) run the periodic
jobs on their own: nothing here calls a job in process."""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from billing import ledger, quota
from billing.models import ApiKey, DailyUsage, Log, Reservation
from tests.support.factories import make_key
from tests.support.live_server import ROOT, database_env
from tests.support.redis_dbs import redis_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

BROKER = redis_url(12)
QUEUE = "celery"  # beat's default queue; this Redis database is this test's own
JOB_ENV = {
    "RECONCILE_INTERVAL": "1",
    "TASK_POLL_INTERVAL": "1",
    "LOG_RETENTION_DAYS": "1",
    "LOG_CLEANUP_INTERVAL": "1",
}


def celery(role: str, log_path: Path, *options: str) -> subprocess.Popen:
    env = {
        **os.environ,
        **database_env(),
        **JOB_ENV,
        "SESSION_SECRET": settings.SECRET_KEY,
        "REDIS_CONN_STRING": settings.REDIS_CONN_STRING,
        "CELERY_BROKER_URL": BROKER,
    }
    command = [str(Path(sys.executable).parent / "celery"), "-A", "gateway_project", role, "-l", "INFO", *options]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def beat_and_worker(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Starts both; yields what reads their logs; stops both."""
    broker = redis.Redis.from_url(BROKER)
    broker.delete(QUEUE)
    worker = celery("worker", tmp_path / "worker.log", "--pool", "solo", "--without-gossip", "--without-mingle")
    beat = celery("beat", tmp_path / "beat.log", "-s", str(tmp_path / "schedule"), "--max-interval", "1")
    yield lambda: "".join(f"--- {name}\n{(tmp_path / name).read_text()[-3000:]}" for name in ("beat.log", "worker.log"))
    for process in (beat, worker):
        process.terminate()
    for process in (beat, worker):
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
    broker.delete(QUEUE)
    broker.close()


def within(seconds: float, condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def old_consume_log(token: ApiKey, days: int) -> Log:
    return ledger.write(
        Log(
            type=Log.Type.CONSUME,
            user_id=token.user_id,
            token_id=token.pk,
            model="gpt-4o",
            quota=70,
            request_id=uuid.uuid4().hex,
            created_at=timezone.now() - timedelta(days=days),
        )
    )


def test_beat_schedules_and_the_worker_releases_stale_reservations_and_deletes_expired_logs(alice, beat_and_worker):
    token = make_key(alice, remain_quota=10_000)[0]
    quota.reserve("died-with-its-process", token.pk, alice.pk, False, 4_000)
    Reservation.objects.update(created_at=timezone.now() - timedelta(seconds=settings.RESERVATION_STALE_SECONDS + 60))
    quota.reserve("still-in-flight", token.pk, alice.pk, False, 1_000)
    expired, kept = old_consume_log(token, days=3), old_consume_log(token, days=0)

    def released() -> bool:
        return Reservation.objects.get(request_id="died-with-its-process").state == Reservation.State.RELEASED

    assert within(60, released), beat_and_worker()
    assert ApiKey.objects.get(pk=token.pk).remain_quota == 10_000 - 1_000
    assert Reservation.objects.get(request_id="still-in-flight").state == Reservation.State.HELD
    assert within(30, lambda: not Log.objects.filter(pk=expired.pk).exists()), beat_and_worker()
    assert Log.objects.filter(pk=kept.pk).exists()
    assert sum(DailyUsage.objects.values_list("requests", flat=True)) == 2  # the aggregate keeps the deleted one
    logs = beat_and_worker()
    for job in ("release_stale_reservations", "reconcile_topups", "poll_tasks", "cleanup_logs"):
        assert f"Sending due task {job}" in logs
    assert "raised unexpected" not in logs, logs
