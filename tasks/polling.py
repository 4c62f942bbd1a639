"""The poller: brings open tasks up to date from their upstreams with one batched fetch per channel, and
fails (with a refund) tasks whose channel is gone or that passed TASK_TIMEOUT_SECONDS. Also the receiver
of Midjourney-Proxy notify callbacks, which are hints: anything that would end a task is re-read from
the upstream first, so a forged callback can at most move a progress bar.

Safe on several workers at once: a fetch done twice only costs an upstream call, and every change goes
through tasks.records.apply_update, which moves only open tasks under a row lock.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

import httpx
from django.conf import settings
from django.utils import timezone

from channels_app import routing
from channels_app.routing import ChannelInfo
from gateway_project.db import run_db
from relay import upstream
from tasks import records
from tasks.adaptors import midjourney
from tasks.adaptors.base import TaskAdaptor
from tasks.adaptors.registry import task_adaptor
from tasks.models import Task, ends_task
from tasks.updates import TaskUpdate

log = logging.getLogger(__name__)

FETCH_CHUNK = 100  # ids per list-by-condition / batch fetch request


@dataclass
class PollReport:
    tasks: int = 0
    updated: int = 0
    failed_fetches: int = 0
    timed_out: int = 0
    orphaned: int = 0


def poll_once() -> PollReport:
    """One round over the oldest TASK_POLL_BATCH open tasks."""
    rows = list(
        Task.objects.filter(status__in=Task.OPEN)
        .order_by("id")
        .values_list("pk", "platform", "channel_id", "upstream_id", "submitted_at")[: settings.TASK_POLL_BATCH]
    )
    report = PollReport(tasks=len(rows))
    groups: dict[tuple[int, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for pk, platform, channel_id, upstream_id, _ in rows:
        if channel_id is None or not upstream_id:
            report.orphaned += records.fail(pk, "the task's channel was deleted, or it never got an upstream id")
        else:
            groups[(channel_id, platform)][upstream_id].append(pk)
    if groups:  # no HTTP client (nor its imports) for a round with nothing to fetch
        _poll_groups(groups, report)
    # After the fetch, so a task that finished just in time keeps its result.
    cutoff = timezone.now() - timedelta(seconds=settings.TASK_TIMEOUT_SECONDS)
    reason = f"the upstream did not finish the task within {settings.TASK_TIMEOUT_SECONDS} seconds"
    report.timed_out = sum(records.fail(row[0], reason) for row in rows if row[4] < cutoff)
    return report


def _poll_groups(groups: dict[tuple[int, str], dict[str, list[int]]], report: PollReport) -> None:
    index = routing.get_index()
    with httpx.Client(timeout=settings.TASK_FETCH_TIMEOUT) as client:
        for (channel_id, platform), by_upstream in groups.items():
            channel = index.by_id.get(channel_id)
            if channel is None:
                log.warning("tasks of channel %s not polled: its key cannot be read", channel_id)
                continue
            _poll_channel(client, task_adaptor(platform), channel, by_upstream, report)


def _poll_channel(
    client: httpx.Client,
    adaptor: TaskAdaptor,
    channel: ChannelInfo,
    by_upstream: dict[str, list[int]],
    report: PollReport,
) -> None:
    upstream_ids = list(by_upstream)
    for start in range(0, len(upstream_ids), FETCH_CHUNK):
        outgoing = adaptor.fetch_request(channel, upstream_ids[start : start + FETCH_CHUNK])
        try:
            response = client.request(outgoing.method, outgoing.url, headers=outgoing.headers, content=outgoing.content)
            updates = read_fetch(adaptor, response.status_code, response.content)
        except (httpx.HTTPError, ValueError) as exc:
            report.failed_fetches += 1
            log.warning("polling channel %s failed: %s", channel.id, exc)
            continue
        for update in updates:
            for pk in by_upstream.get(update.upstream_id, ()):
                report.updated += records.apply_update(pk, update)


def read_fetch(adaptor: TaskAdaptor, status: int, content: bytes) -> list[TaskUpdate]:
    if status != 200:
        raise ValueError(f"the upstream answered the task fetch with status {status}")
    return adaptor.read_fetch(content)


async def fetch_now(adaptor: TaskAdaptor, channel: ChannelInfo, upstream_ids: list[str]) -> list[TaskUpdate]:
    """The poller's fetch, from async code, on the relay's shared HTTP client."""
    outgoing = adaptor.fetch_request(channel, upstream_ids)
    response = await upstream.client().request(
        outgoing.method,
        outgoing.url,
        headers=outgoing.headers,
        content=outgoing.content,
        timeout=settings.TASK_FETCH_TIMEOUT,
    )
    return read_fetch(adaptor, response.status_code, response.content)


async def take_notice(channel_id: int, body: dict) -> bool:
    """A Midjourney-Proxy notifyHook call for `channel_id`: False unless it names an open task of that channel."""
    reported = midjourney.task_update(body)
    if not reported.upstream_id:
        return False
    pks = await run_db(records.open_tasks_of, channel_id, Task.Platform.MIDJOURNEY, reported.upstream_id)
    if not pks:
        return False
    # Of an unverified report only the status and progress count; results come from the upstream itself.
    update = TaskUpdate(reported.upstream_id, reported.status, reported.progress)
    if ends_task(reported):
        # An ending moves money: believe the upstream, not the caller. On any doubt the poller decides.
        channel = (await routing.aget_index()).by_id.get(channel_id)
        if channel is None:
            return True
        try:
            confirmed = await fetch_now(task_adaptor(Task.Platform.MIDJOURNEY), channel, [reported.upstream_id])
        except (httpx.HTTPError, ValueError):
            return True
        upstream_update = next((found for found in confirmed if found.upstream_id == reported.upstream_id), None)
        if upstream_update is None:
            return True
        update = upstream_update
    for pk in pks:
        await run_db(records.apply_update, pk, update)
    return True
