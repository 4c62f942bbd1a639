"""What admin's dashboard shows of the last days' usage, each part one grouped query: consumption per day and
its top models and users (from the daily aggregate, billing.daily_usage), each channel's answers, failures and
average latency (from the request logs), and the channels auto-disabled (from the audit trail)."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Avg, Count, Q, QuerySet, Sum
from django.utils import timezone

from billing import daily_usage
from billing.audit import System
from billing.models import AuditEntry, DailyUsage, Log, User

TOP = 10


@dataclass(frozen=True)
class Ranked:
    name: str
    quota: int
    requests: int


@dataclass(frozen=True)
class ChannelTraffic:
    answered: int  # consume logs
    failed: int  # error logs: requests whose last attempt was this channel and failed
    average_ms: int  # of the answered requests

    @property
    def failure_rate(self) -> float:
        total = self.answered + self.failed
        return self.failed / total if total else 0.0


@dataclass(frozen=True)
class AutoDisabled:
    channel_id: int
    at: datetime
    reason: str


def first_day(days: int, today: date | None = None) -> date:
    """The first of the `days` days that end today (in TIME_ZONE)."""
    return (today or timezone.localdate()) - timedelta(days=days - 1)


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def top_models(since: date, limit: int = TOP) -> list[Ranked]:
    grouped = _since(since).values("model").annotate(quota=Sum("quota"), requests=Sum("requests"))
    return [
        Ranked(row["model"], int(row["quota"]), int(row["requests"]))
        for row in grouped.order_by("-quota", "model")[:limit]
    ]


def top_users(since: date, limit: int = TOP) -> list[Ranked]:
    grouped = _since(since).values("user_id").annotate(quota=Sum("quota"), requests=Sum("requests"))
    found = list(grouped.order_by("-quota", "user_id")[:limit])
    names = dict(User.objects.filter(pk__in=[row["user_id"] for row in found]).values_list("pk", "username"))
    return [
        Ranked(names.get(row["user_id"], f"#{row['user_id']}"), int(row["quota"]), int(row["requests"]))
        for row in found
    ]


def channel_traffic(since: date) -> dict[int, ChannelTraffic]:
    """By channel id, for the channels that served or failed a request since the start of `since`."""
    answered = Q(type=Log.Type.CONSUME)
    grouped = (
        Log.objects.filter(created_at__gte=day_start(since), type__in=(Log.Type.CONSUME, Log.Type.ERROR))
        .exclude(channel_id=None)
        .order_by()
        .values("channel_id")
        .annotate(
            answered=Count("id", filter=answered),
            failed=Count("id", filter=Q(type=Log.Type.ERROR)),
            average_ms=Avg("use_time_ms", filter=answered),
        )
    )
    return {
        row["channel_id"]: ChannelTraffic(row["answered"], row["failed"], round(row["average_ms"] or 0))
        for row in grouped
    }


def auto_disabled_since(since: date, limit: int = TOP) -> list[AutoDisabled]:
    """The latest automatic disables, newest first, with the reason recorded when it happened."""
    entries = AuditEntry.objects.filter(
        object_type=AuditEntry.Kind.CHANNEL, actor_name=System.AUTO_DISABLE, created_at__gte=day_start(since)
    ).order_by("-created_at", "-id")[:limit]
    return [AutoDisabled(entry.object_id, entry.created_at, _reason(entry.changes)) for entry in entries]


def _reason(changes: dict) -> str:
    change = changes.get("status_reason")
    return str(change[1]) if isinstance(change, list) and len(change) == 2 else ""


def _since(since: date) -> QuerySet[DailyUsage]:
    return daily_usage.usage_rows(first=since).order_by()  # no ordering column in the GROUP BY
