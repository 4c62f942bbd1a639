"""The daily usage aggregate (billing.models.DailyUsage): moved by every consume and refund log as it is
written, read by /api/logs/stats and the console chart so that neither scans the raw logs, and kept when
old logs are deleted (billing.log_cleanup).

Concurrency: `record` runs inside the transaction that writes the log rows (billing.ledger). In billing.quota
that transaction has already updated the user's row, and an aggregate row belongs to one user, so its writers
queue on the user's row lock and the UPDATE-then-INSERT below never races there. A writer without that
lock (a fixture, an import) is covered by the unique key: the loser of an INSERT race fails inside its
savepoint and then updates the winner's row, which PostgreSQL and MariaDB (READ COMMITTED, Django's
default) show to that UPDATE once the winner commits; SQLite has one writer at a time.
"""

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from django.db import IntegrityError, models, transaction
from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from billing import rows
from billing.models import LOG_TOKEN_FIELDS, DailyUsage, Log

# What each consume log adds to its day, besides one request.
SUMMED = (*LOG_TOKEN_FIELDS, "quota")
COUNTERS = ("requests", *SUMMED)


def record(logs: Sequence[Log]) -> None:
    """Add the consume rows among `logs` to their days; take each refund off the day and row of the charge it
    gives back (the refund's own day and row when that consume log has already been deleted). Other rows
    count in no total."""
    _add_consumed([log for log in logs if log.type == Log.Type.CONSUME])
    for log in logs:
        if log.type == Log.Type.REFUND:
            charged = _charge_of(log.request_id)
            add(row_key(charged or log), quota=-log.quota)


def _add_consumed(logs: list[Log]) -> None:
    """One change per aggregate row, however many of `logs` count in it."""
    days: dict[tuple, dict[str, int]] = {}
    for log in logs:
        counts = days.setdefault(tuple(row_key(log).items()), dict.fromkeys(COUNTERS, 0))
        counts["requests"] += 1
        for name in SUMMED:
            counts[name] += getattr(log, name)
    for key in sorted(days, key=repr):
        add(dict(key), **days[key])


def _charge_of(request_id: str) -> Log | None:
    return Log.objects.filter(type=Log.Type.CONSUME, request_id=request_id).first() if request_id else None


def row_key(log: Any) -> dict[str, Any]:
    """Where a log row counts: its local day and who, with which key, channel and model (0 = none)."""
    return {
        "day": timezone.localdate(log.created_at),
        "user_id": log.user_id or 0,
        "token_id": log.token_id or 0,
        "channel_id": log.channel_id or 0,
        "model": log.model,
    }


def add(key: dict[str, Any], **deltas: int) -> None:
    """Add `deltas` (negative to take away) to the counters of the row `key`, creating it if needed."""
    if rows.add(DailyUsage, key, deltas):
        return
    try:
        with transaction.atomic():
            DailyUsage.objects.create(**key, **deltas)
    except IntegrityError:  # inserted meanwhile by a writer that holds none of our locks: now it is there
        rows.add(DailyUsage, key, deltas)


def usage_rows(
    *,
    user_id: int | None = None,
    token_id: int | None = None,
    channel_id: int | None = None,
    model: str | None = None,
    first: date | None = None,
    last: date | None = None,
) -> QuerySet[DailyUsage]:
    """Aggregate rows matching the given filters (None = any), days `first` to `last` inclusive."""
    exact = {"user_id": user_id, "token_id": token_id, "channel_id": channel_id, "model": model}
    rows = DailyUsage.objects.filter(**{name: value for name, value in exact.items() if value is not None})
    if first is not None:
        rows = rows.filter(day__gte=first)
    if last is not None:
        rows = rows.filter(day__lte=last)
    return rows


def totals(rows: QuerySet[DailyUsage]) -> dict[str, int]:
    sums = rows.order_by().aggregate(**{name: Coalesce(Sum(name), 0) for name in COUNTERS})
    return {name: int(value) for name, value in sums.items()}


def per_day(rows: QuerySet[DailyUsage]) -> dict[date, dict[str, int]]:
    grouped = rows.order_by().values("day").annotate(quota=Sum("quota"), requests=Sum("requests"))
    return {row["day"]: {"quota": int(row["quota"]), "requests": int(row["requests"])} for row in grouped}


def backfill(log_model: type[models.Model], usage_model: type[models.Model], batch_size: int = 1000) -> int:
    """Build the aggregate from the logs already written (migration 0003 passes its historical models).
    Returns the number of aggregate rows created."""
    consumed = log_model.objects.filter(type=Log.Type.CONSUME).order_by()
    grouped = consumed.values(
        day=TruncDate("created_at"),
        user=Coalesce("user_id", 0),
        token=Coalesce("token_id", 0),
        channel=Coalesce("channel_id", 0),
        model_name=F("model"),
    ).annotate(**{name: Sum(name) for name in _fields_of(log_model, SUMMED)}, requests=Count("id"))
    created = 0
    for chunk in _chunks(grouped.iterator(), batch_size):
        rows = [usage_model(**_usage_fields(group)) for group in chunk]
        created += len(usage_model.objects.bulk_create(rows))
    for refund in log_model.objects.filter(type=Log.Type.REFUND).exclude(request_id="").iterator():
        charged = consumed.filter(request_id=refund.request_id).first()
        if charged is not None:
            usage_model.objects.filter(**row_key(charged)).update(quota=F("quota") - refund.quota)
    return created


def _fields_of(model: type[models.Model], names: tuple[str, ...]) -> list[str]:
    """The `names` a historical model has: a migration before the cache columns backfills without them."""
    present = {field.name for field in model._meta.get_fields()}
    return [name for name in names if name in present]


def _usage_fields(group: dict[str, Any]) -> dict[str, Any]:
    names = {"user": "user_id", "token": "token_id", "channel": "channel_id", "model_name": "model"}
    return {names.get(name, name): value for name, value in group.items()}


def _chunks(items: Iterable[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
