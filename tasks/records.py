"""Task records: created when an upstream accepts a submit (charged in the same transaction), moved by
upstream reports, failed and refunded exactly once.

Concurrency: every change to an open task first locks its row with a filter on the open statuses, so two
pollers (or a poller and a notify callback) apply one after the other and the second finds the task
already finished: a failure is refunded once. billing.quota.refund is itself idempotent on the task id,
so even a bypass of this lock could not pay twice. Locks are taken in the order task -> reservation ->
key -> user -> channel, the same order billing.quota uses after the task.
"""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from billing import quota
from billing.models import User
from tasks.models import Task
from tasks.updates import TaskUpdate


@dataclass
class NewTask:
    public_id: str
    platform: str
    action: str
    model: str
    user_id: int
    token_id: int
    channel_id: int
    upstream_id: str
    prompt: str
    properties: dict
    quota: int
    origin_pk: int | None = None


def record_accepted(new: NewTask, charge: quota.Charge, initial: TaskUpdate | None = None) -> Task:
    """Store a task the upstream accepted and settle its reservation as the charge, in one transaction:
    a task row exists exactly when its charge does, so every charged task is polled and refundable."""
    with transaction.atomic():
        task = Task(
            public_id=new.public_id,
            platform=new.platform,
            action=new.action,
            model=new.model,
            user_id=new.user_id,
            token_id=new.token_id,
            channel_id=new.channel_id,
            origin_id=new.origin_pk,
            upstream_id=new.upstream_id,
            prompt=new.prompt[:4000],
            properties=new.properties,
            quota=new.quota,
        )
        if initial is not None:
            task.absorb(initial)
        if not quota.settle(charge):
            task.quota = 0  # the reservation was already given back: nothing was charged, nothing to refund
        task.save()
    return task


def apply_update(task_pk: int, update: TaskUpdate) -> bool:
    """Move an open task as the upstream reports; refund it if it failed. False if finished or unchanged."""
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(pk=task_pk, status__in=Task.OPEN).first()
        if task is None or not task.absorb(update):
            return False
        task.save()
        if task.status == Task.Status.FAILURE and task.quota:
            _refund(task)
    return True


def fail(task_pk: int, reason: str) -> bool:
    """End an open task as failed for a reason of the gateway's own (timeout, channel gone), with a refund."""
    return apply_update(task_pk, TaskUpdate(upstream_id="", status=Task.Status.FAILURE, fail_reason=reason))


def _refund(task: Task) -> None:
    charge = quota.Charge(
        request_id=task.public_id,
        quota=task.quota,
        model=task.model,
        prompt_tokens=0,
        completion_tokens=0,
        channel_id=task.channel_id,
        token_name=task.token.name if task.token_id else "",
        is_stream=False,
        use_time_ms=0,
        content=f"{task.platform} task {task.public_id} ({task.action}) failed: {task.fail_reason[:300]}; "
        f"refunded {task.quota}",
    )
    if quota.refund(charge):
        Task.objects.filter(pk=task.pk).update(refunded=True)


def find_own(user_id: int, platform: str, public_id: str) -> Task | None:
    return Task.objects.filter(user_id=user_id, platform=platform, public_id=public_id).first()


def own_tasks(user_id: int, platform: str, public_ids: list[str]) -> list[Task]:
    """The caller's tasks among `public_ids`, in the order asked; unknown and foreign ids are left out."""
    found = {t.public_id: t for t in Task.objects.filter(user_id=user_id, platform=platform, public_id__in=public_ids)}
    return [found[public_id] for public_id in dict.fromkeys(public_ids) if public_id in found]


def open_tasks_of(channel_id: int, platform: str, upstream_id: str) -> list[int]:
    """Open tasks that a channel's upstream knows as `upstream_id` (several follow-ups may share one)."""
    found = Task.objects.filter(channel_id=channel_id, platform=platform, upstream_id=upstream_id)
    return list(found.filter(status__in=Task.OPEN).values_list("pk", flat=True))


def visible_tasks(viewer: User, platform: str | None, status: str | None, user_id: int | None) -> QuerySet[Task]:
    """Newest first. Staff see every task; other users only their own, and asking for someone else's is 403."""
    found = Task.objects.order_by("-submitted_at", "-id")
    if not viewer.is_staff:
        if user_id not in (None, viewer.pk):
            raise PermissionDenied(_("you may only list your own tasks"))
        user_id = viewer.pk
    exact = {"platform": platform, "status": status, "user_id": user_id}
    return found.filter(**{name: value for name, value in exact.items() if value is not None})
