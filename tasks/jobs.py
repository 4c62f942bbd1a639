"""Periodic jobs. Celery beat runs them when a broker is configured; otherwise the embedded runner does.

Every job is safe to run on several processes at once.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from billing import journal, log_cleanup, quota
from billing.payments import topup
from relay import channel_test, stored_responses
from tasks import polling


@dataclass(frozen=True)
class Job:
    name: str
    every_seconds: float
    run: Callable[[], object]
    first_after_seconds: float | None = None  # default: every_seconds


def web_process_jobs() -> list[Job]:
    """What every web process runs in its embedded runner: the settlement journals of processes of this
    host that ended (they are on this host's disk, so Celery cannot), and the periodic jobs when no Celery
    broker is configured."""
    jobs = [Job("settle_orphan_journals", settings.RECONCILE_INTERVAL, journal.replay_orphans, first_after_seconds=1)]
    if settings.TASK_RUNNER == "embedded":
        jobs.extend(periodic_jobs())
    return jobs


def periodic_jobs() -> list[Job]:
    jobs = [
        Job("release_stale_reservations", settings.RECONCILE_INTERVAL, quota.release_stale),
    ]
    if settings.CHANNEL_TEST_FREQUENCY > 0:
        jobs.append(Job("test_channels", settings.CHANNEL_TEST_FREQUENCY * 60, channel_test.probe_all_channels))
    if settings.UPDATE_TASK:
        jobs.append(Job("poll_tasks", settings.TASK_POLL_INTERVAL, polling.poll_once))
    jobs.append(Job("reconcile_topups", settings.RECONCILE_INTERVAL, topup.reconcile_pending))
    jobs.append(Job("forget_expired_responses", settings.LOG_CLEANUP_INTERVAL, stored_responses.forget_expired))
    if settings.LOG_RETENTION_DAYS > 0:
        jobs.append(Job("cleanup_logs", settings.LOG_CLEANUP_INTERVAL, log_cleanup.delete_expired))
    return jobs
