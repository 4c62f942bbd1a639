"""Deleting old request logs in small batches, so that the relay's own log writes never queue behind one
long delete. The daily usage aggregate keeps their totals, so stats and charts are unchanged.

Only request logs go (consume and error rows, one per request); top-up, refund and manage rows are the
audit trail of money moved by hand or by payment and stay. The cleanup walks the primary key from the
oldest row to delete to the newest, `batch_size` rows at a time, and deletes each run of doomed rows with
one DELETE over a primary-key range, committed on its own. Every statement names only the primary key
(and created_at, which has no index of its own): offered `type` too, SQLite walks the (type, created_at)
index over every old row for each batch instead, which made a cleanup quadratic. Between batches it
sleeps at least as long as the batch took, so on SQLite (one writer at a time) the relay gets the lock at
least half of the time.
"""

import time
from datetime import date, datetime, timedelta
from datetime import time as clock
from itertools import groupby

from django.conf import settings
from django.db.models import Max, Min, QuerySet
from django.utils import timezone

from billing.models import Log

REQUEST_LOG_TYPES = (Log.Type.CONSUME, Log.Type.ERROR)
BATCH_SIZE = 5000
MIN_PAUSE_SECONDS = 0.01


def start_of(day: date) -> datetime:
    """Local midnight (TIME_ZONE) at the start of `day`."""
    return timezone.make_aware(datetime.combine(day, clock.min))


def old_logs(before: datetime) -> QuerySet[Log]:
    return Log.objects.filter(type__in=REQUEST_LOG_TYPES, created_at__lt=before)


def delete_before(before: datetime, batch_size: int = BATCH_SIZE) -> int:
    """Delete the request logs created before `before`; returns how many went."""
    bounds = old_logs(before).aggregate(first=Min("id"), last=Max("id"))
    if bounds["first"] is None:
        return 0
    deleted, after = 0, bounds["first"] - 1
    while after < bounds["last"]:
        started = time.monotonic()
        span = Log.objects.filter(id__gt=after, id__lte=bounds["last"]).order_by("id")
        window = list(span.values_list("id", "type", "created_at")[:batch_size])
        if not window:  # another cleanup got there first
            break
        for first, last in _doomed_runs(window, before):
            deleted += Log.objects.filter(id__gte=first, id__lte=last, created_at__lt=before).delete()[0]
        after = window[-1][0]
        time.sleep(max(MIN_PAUSE_SECONDS, time.monotonic() - started))
    return deleted


def _doomed_runs(window: list[tuple[int, str, datetime]], before: datetime) -> list[tuple[int, int]]:
    """First and last id of each run of rows to delete; rows that stay (audit rows, newer rows) split runs."""
    runs = []
    for doomed, rows in groupby(window, key=lambda row: row[1] in REQUEST_LOG_TYPES and row[2] < before):
        if doomed:
            ids = [row[0] for row in rows]
            runs.append((ids[0], ids[-1]))
    return runs


def delete_expired() -> int:
    """The daily job when LOG_RETENTION_DAYS > 0: request logs from before the local day that many days ago."""
    return delete_before(start_of(timezone.localdate() - timedelta(days=settings.LOG_RETENTION_DAYS)))
