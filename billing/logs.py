"""Reading the ledger: which log rows a caller may see, filtered, and their totals."""

from dataclasses import dataclass, replace
from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import Coalesce

from billing.models import Log, User


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
    logs = Log.objects.order_by("-created_at", "-id")
    if not viewer.is_staff:
        if where.user_id not in (None, viewer.pk):
            raise PermissionDenied("you may only read your own logs")
        logs = logs.filter(user_id=viewer.pk)
    exact = {"user_id": where.user_id, "token_id": where.token_id, "channel_id": where.channel_id}
    exact.update(model=where.model, type=where.type)
    logs = logs.filter(**{name: value for name, value in exact.items() if value is not None})
    if where.since is not None:
        logs = logs.filter(created_at__gte=where.since)
    if where.until is not None:
        logs = logs.filter(created_at__lte=where.until)
    return logs


def log_stats(viewer: User, where: LogFilter) -> dict[str, int]:
    """Totals of the matching rows. Without a `type` filter only consumption counts: adding top-ups and
    manual adjustments to what requests cost would make `quota` and `requests` meaningless."""
    if where.type is None:
        where = replace(where, type=Log.Type.CONSUME)
    totals = (
        visible_logs(viewer, where)
        .order_by()
        .aggregate(
            quota=Coalesce(Sum("quota"), 0),
            requests=Count("id"),
            prompt_tokens=Coalesce(Sum("prompt_tokens"), 0),
            completion_tokens=Coalesce(Sum("completion_tokens"), 0),
        )
    )
    return {name: int(value) for name, value in totals.items()}
