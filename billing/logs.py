"""Reading the ledger: which log rows a caller may see, filtered, and their totals."""

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time

from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import daily_usage
from billing.models import LOG_TOKEN_FIELDS, Log, User

# An `until` in the last second of a day counts as that whole day: clients send 23:59:59, not .999999.
LAST_SECOND = time(23, 59, 59)


@dataclass(frozen=True)
class LogFilter:
    user_id: int | None = None
    token_id: int | None = None
    channel_id: int | None = None
    model: str | None = None
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def visible_logs(viewer: User, where: LogFilter) -> QuerySet[Log]:
    """Newest first. Staff see every row; other users only their own, and asking for someone else's is 403."""
    where = _scoped(viewer, where)
    exact: dict[str, int | str | None] = {"user_id": where.user_id, "token_id": where.token_id}
    exact.update(channel_id=where.channel_id, model=where.model, type=where.type)
    logs = Log.objects.order_by("-created_at", "-id")
    logs = logs.filter(**{name: value for name, value in exact.items() if value is not None})
    if where.since is not None:
        logs = logs.filter(created_at__gte=where.since)
    if where.until is not None:
        logs = logs.filter(created_at__lte=where.until)
    return logs


# The columns of a CSV export, each a Log field.
CSV_COLUMNS = (
    "created_at",
    "type",
    "token_name",
    "model",
    *LOG_TOKEN_FIELDS,
    "quota",
    "use_time_ms",
    "is_stream",
    "request_id",
    "content",
)


def log_csv_rows(logs: QuerySet[Log]) -> Iterator[list]:
    """The header, then one list of CSV_COLUMNS per row, read in chunks (an export can be long)."""
    yield list(CSV_COLUMNS)
    for values in logs.values_list(*CSV_COLUMNS).iterator(chunk_size=1000):
        yield [timezone.localtime(value).isoformat() if isinstance(value, datetime) else value for value in values]


def log_stats(viewer: User, where: LogFilter) -> dict[str, int]:
    """Totals of the matching rows. Without a `type` filter only consumption counts: adding top-ups and
    manual adjustments to what requests cost would make `quota` and `requests` meaningless. Consumption is
    net of refunds (a failed asynchronous task gives its charge back) and comes from the daily aggregate
    when the window is whole days, which it always is without `since` and `until`."""
    if where.type not in (None, Log.Type.CONSUME):
        return _totals(visible_logs(viewer, where))
    where = replace(_scoped(viewer, where), type=Log.Type.CONSUME)
    days = whole_days(where.since, where.until)
    if days is not None:
        ids = {"user_id": where.user_id, "token_id": where.token_id, "channel_id": where.channel_id}
        return daily_usage.totals(daily_usage.usage_rows(**ids, model=where.model, first=days[0], last=days[1]))
    consumed = visible_logs(viewer, where).order_by()
    totals = _totals(consumed)
    refunds = Log.objects.filter(type=Log.Type.REFUND, request_id__in=consumed.values("request_id"))
    totals["quota"] -= _totals(refunds.exclude(request_id=""))["quota"]
    return totals


def whole_days(since: datetime | None, until: datetime | None) -> tuple[date | None, date | None] | None:
    """The first and last local day of a window made of whole days (None: unbounded), or None if it is not."""
    first = last = None
    if since is not None:
        since = timezone.localtime(_aware(since))
        if since.time() != time.min:
            return None
        first = since.date()
    if until is not None:
        until = timezone.localtime(_aware(until))
        if until.time() < LAST_SECOND:
            return None
        last = until.date()
    return first, last


def _aware(moment: datetime) -> datetime:
    # A naive bound means local time, as it does when Django filters on it.
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _scoped(viewer: User, where: LogFilter) -> LogFilter:
    if viewer.is_staff:
        return where
    if where.user_id not in (None, viewer.pk):
        raise PermissionDenied(_("you may only read your own logs"))
    return replace(where, user_id=viewer.pk)


def _totals(logs: QuerySet[Log]) -> dict[str, int]:
    sums = {name: Coalesce(Sum(name), 0) for name in daily_usage.SUMMED}
    totals = logs.order_by().aggregate(requests=Count("id"), **sums)
    return {name: int(value) for name, value in totals.items()}
