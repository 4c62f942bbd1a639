"""Log growth: the daily usage aggregate moves with every settle and refund, stats and the console chart read
it instead of the logs, `cleanup_logs` deletes old request logs in batches, and the indexes fit the filters."""

import os
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import daily_usage, ledger, quota
from billing.console import charts
from billing.logs import LogFilter, visible_logs, whole_days
from billing.models import AccessToken, ApiKey, DailyUsage, Log, Reservation, User
from tasks.jobs import periodic_jobs
from tests.support.factories import make_key
from tests.support.live_server import ROOT, database_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

TODAY = timezone.localdate
NO_SPLIT = {"cache_read_tokens": 0, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "reasoning_tokens": 0}


def settle(token: ApiKey, cost: int, model: str = "gpt-4o", channel_id: int | None = 7) -> str:
    """Reserve and settle one request the way the relay does; returns its request id."""
    request_id = uuid.uuid4().hex
    quota.reserve(request_id, token.pk, token.user_id, token.unlimited_quota, cost + 100)
    quota.settle(charge(request_id, cost, model, channel_id, prompt_tokens=10, completion_tokens=5))
    return request_id


def charge(request_id: str, cost: int, model: str, channel_id: int | None, **fields) -> quota.Charge:
    fields = {"prompt_tokens": 0, "completion_tokens": 0, "is_stream": False, "use_time_ms": 1, **fields}
    return quota.Charge(request_id, cost, model, channel_id=channel_id, token_name="app", content="", **fields)


def aged(request_id: str, days: int) -> None:
    """Move a settled request `days` back, in its log and in the aggregate, as if it had been settled then."""
    log = Log.objects.get(type=Log.Type.CONSUME, request_id=request_id)
    counts = {"requests": 1, "quota": log.quota}
    counts.update(prompt_tokens=log.prompt_tokens, completion_tokens=log.completion_tokens)
    daily_usage.add(daily_usage.row_key(log), **{name: -value for name, value in counts.items()})
    log.created_at -= timedelta(days=days)
    Log.objects.filter(pk=log.pk).update(created_at=log.created_at)
    daily_usage.add(daily_usage.row_key(log), **counts)
    DailyUsage.objects.filter(requests=0).delete()


def stats(token: str, **query: object) -> dict[str, int]:
    response = Client().get("/api/logs/stats", query, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content
    return response.json()


def day_window(first: object, last: object) -> dict[str, str]:
    return {"since": f"{first}T00:00:00Z", "until": f"{last}T23:59:59Z"}


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


def env_for_subprocess() -> dict[str, str]:
    return {**os.environ, **database_env(), "SESSION_SECRET": settings.SECRET_KEY}


@pytest.fixture
def key(alice: User) -> ApiKey:
    return make_key(alice)[0]


@pytest.fixture
def root_token(root: User) -> str:
    return AccessToken.issue(root)[1]


def test_settle_adds_to_the_days_row_and_refund_takes_the_charge_back(key):
    first = settle(key, 1000)
    settle(key, 500)
    settle(key, 300, model="gpt-4o-mini")
    row = DailyUsage.objects.get(model="gpt-4o")
    assert (row.day, row.user_id, row.token_id, row.channel_id) == (TODAY(), key.user_id, key.pk, 7)
    assert (row.requests, row.prompt_tokens, row.completion_tokens, row.quota) == (2, 20, 10, 1500)
    assert quota.refund(charge(first, 1000, "gpt-4o", 7))
    row.refresh_from_db()
    assert (row.requests, row.quota) == (2, 500)
    used = User.objects.get(pk=key.user_id).used_quota
    assert used == sum(DailyUsage.objects.values_list("quota", flat=True)) == 800


def test_a_refund_counts_on_the_day_of_its_charge(key):
    request_id = settle(key, 1000)
    aged(request_id, 3)
    quota.refund(charge(request_id, 1000, "gpt-4o", 7))
    assert list(DailyUsage.objects.values_list("day", "quota")) == [(TODAY() - timedelta(days=3), 0)]


def test_the_aggregate_moves_in_the_settle_transaction_or_not_at_all(key, monkeypatch):
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("aggregate write failed")

    monkeypatch.setattr(daily_usage, "add", broken)
    with pytest.raises(RuntimeError):
        settle(key, 1000)
    key.refresh_from_db()
    assert not Log.objects.filter(type=Log.Type.CONSUME).exists() and key.used_quota == 0
    assert Reservation.objects.get().state == Reservation.State.HELD


@override_settings(TIME_ZONE="Asia/Shanghai")
def test_days_are_local_days_of_time_zone(key):
    late_evening_utc = datetime(2024, 5, 1, 20, 0, tzinfo=UTC)
    ledger.write(Log(type=Log.Type.CONSUME, user_id=key.user_id, model="m", quota=5, created_at=late_evening_utc))
    assert DailyUsage.objects.get().day.isoformat() == "2024-05-02"


def test_concurrent_first_writes_of_one_row_add_up(key):
    """Writers that hold no user lock (unlike billing.quota) race to insert the same row; none is lost."""
    writers, barrier, failures = 8, threading.Barrier(8), []

    def write() -> None:
        try:
            connection.ensure_connection()
            barrier.wait(5)
            fields = {"user_id": key.user_id, "token_id": key.pk, "request_id": uuid.uuid4().hex}
            ledger.write(Log(type=Log.Type.CONSUME, model="m", quota=3, **fields))
        except Exception as failure:  # reported below, with the backend's message
            failures.append(repr(failure))
        finally:
            connection.close()

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    row = DailyUsage.objects.get()
    assert (row.requests, row.quota) == (writers, 3 * writers)


def test_whole_day_stats_come_from_the_aggregate_and_match_the_logs(key, root_token):
    refunded = settle(key, 1000)
    settle(key, 500, model="gpt-4o-mini", channel_id=None)
    quota.refund(charge(refunded, 1000, "gpt-4o", 7))
    today = TODAY()
    with CaptureQueriesContext(connection) as queries:
        from_aggregate = stats(root_token, user_id=key.user_id, **day_window(today, today))
    assert not [query for query in queries if "billing_log" in query["sql"]]
    partial = {"since": f"{today}T00:00:00Z", "until": f"{today}T23:59:58Z"}  # not whole days: scans logs
    assert from_aggregate == stats(root_token, user_id=key.user_id, **partial)
    assert from_aggregate == {"quota": 500, "requests": 2, "prompt_tokens": 20, "completion_tokens": 10, **NO_SPLIT}
    assert stats(root_token, token_id=key.pk, model="gpt-4o-mini")["quota"] == 500
    totals = {"quota": 0, "requests": 1, "prompt_tokens": 10, "completion_tokens": 5, **NO_SPLIT}
    assert stats(root_token, channel_id=7) == totals
    assert stats(root_token, type="refund")["quota"] == 1000  # other types still sum their log rows


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        ("2024-05-01T00:00:00+00:00", "2024-05-03T23:59:59+00:00", ("2024-05-01", "2024-05-03")),
        ("2024-05-01T00:00:00", None, ("2024-05-01", None)),
        (None, "2024-05-03T23:59:59.999999+00:00", (None, "2024-05-03")),
        ("2024-05-01T00:00:01+00:00", None, None),
        (None, "2024-05-03T12:00:00+00:00", None),
        ("2024-05-01T00:00:00+02:00", None, None),  # midnight elsewhere is not a day of TIME_ZONE (UTC)
    ],
)
def test_whole_days_accepts_only_windows_of_whole_local_days(since, until, expected):
    days = whole_days(*(datetime.fromisoformat(bound) if bound else None for bound in (since, until)))
    assert days == (None if expected is None else tuple(day and datetime.fromisoformat(day).date() for day in expected))


def test_cleanup_deletes_old_request_logs_in_batches_and_history_stays(key, root_token, alice):
    old = [settle(key, 100 * n) for n in range(1, 4)]
    for kind in (Log.Type.TOPUP, Log.Type.MANAGE):  # audit rows and a recent one between old ones stay
        Log.objects.create(type=kind, user_id=alice.pk, quota=9, created_at=timezone.now() - timedelta(days=40))
    settle(key, 50)
    old += [settle(key, 100 * n) for n in range(4, 8)]
    for request_id in old:
        aged(request_id, 40)
    Log.objects.filter(request_id=old[0]).update(type=Log.Type.ERROR)
    before = (TODAY() - timedelta(days=30)).isoformat()
    history = stats(root_token, user_id=alice.pk)
    chart_before = charts.usage_by_day(alice.pk, 60)

    said = f"7 request logs created before {before}"
    assert run("cleanup_logs", "--before", before, "--dry-run") == f"would delete {said}"
    assert Log.objects.count() == 10
    with CaptureQueriesContext(connection) as queries:
        assert run("cleanup_logs", "--before", before, "--batch-size", "3") == f"deleted {said}"
    deletes = [query["sql"].replace("`", '"') for query in queries if query["sql"].startswith("DELETE")]
    assert len(deletes) == 3 and not [sql for sql in deletes if '"type"' in sql]  # primary-key ranges only
    assert sorted(Log.objects.values_list("type", flat=True)) == ["consume", "manage", "topup"]
    assert stats(root_token, user_id=alice.pk) == history and charts.usage_by_day(alice.pk, 60) == chart_before
    assert history["requests"] == 8 and chart_before[-41].quota == sum(range(100, 800, 100))


def test_cleanup_refuses_a_bad_date_with_a_clear_message(db):
    with pytest.raises(CommandError, match="--before needs a date like 2024-05-01, not '2024-13-01'"):
        run("cleanup_logs", "--before", "2024-13-01")
    command = [sys.executable, "manage.py", "cleanup_logs", "--before", "last week"]
    finished = subprocess.run(command, cwd=ROOT, env=env_for_subprocess(), capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0 and "--before needs a date like 2024-05-01" in finished.stderr


def test_log_retention_days_adds_a_daily_cleanup_of_older_logs(key):
    assert "cleanup_logs" not in [job.name for job in periodic_jobs()]
    kept, expired = settle(key, 10), settle(key, 20)
    aged(kept, 3)
    aged(expired, 4)
    with override_settings(LOG_RETENTION_DAYS=3):
        [job] = [job for job in periodic_jobs() if job.name == "cleanup_logs"]
        assert job.every_seconds == 24 * 3600
        assert job.run() == 1
    assert list(Log.objects.values_list("request_id", flat=True)) == [kept]


def test_the_migration_backfills_the_aggregate_from_existing_logs(key):
    for request_id in (settle(key, 100), settle(key, 200, model="other", channel_id=None)):
        aged(request_id, 2)
    refunded = settle(key, 400)
    quota.refund(charge(refunded, 400, "gpt-4o", 7))
    written = sorted(DailyUsage.objects.values_list("day", "token_id", "channel_id", "model", "requests", "quota"))
    DailyUsage.objects.all().delete()
    assert daily_usage.backfill(Log, DailyUsage, batch_size=2) == 3
    assert sorted(DailyUsage.objects.values_list("day", "token_id", "channel_id", "model", "requests", "quota")) == (
        written
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's query plans")
def test_postgresql_serves_every_log_filter_from_its_index(root):
    """30 days of 20 000 rows from 200 users: each filter of /api/logs, newest first, reads its own index."""
    now, kinds = timezone.now(), ["consume"] * 9 + ["error"]
    rows = [
        Log(type=kinds[n % 10], user_id=n % 200, token_id=n % 1000, channel_id=n % 50, model=f"m{n % 20}")
        for n in range(20_000)
    ]
    for n, row in enumerate(rows):
        row.created_at, row.request_id = now - timedelta(minutes=2 * n + 1), f"r{n}"
    Log.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_log")
    since = now - timedelta(days=1)
    for column, value in [("user_id", 1), ("token_id", 1), ("channel_id", 1), ("model", "m1"), ("type", "error")]:
        index = next(index.name for index in Log._meta.indexes if index.fields == [column, "created_at"])
        plan = visible_logs(root, LogFilter(**{column: value}, since=since))[:50].explain()
        assert index in plan, plan
