"""Runs the web process's jobs (tasks.jobs.web_process_jobs) in a daemon thread."""

import logging
import threading
import time

from django.db import close_old_connections

from tasks.jobs import Job, web_process_jobs

log = logging.getLogger(__name__)


class _Runner:
    thread: threading.Thread | None = None


def start() -> None:
    if _Runner.thread is None:
        _Runner.thread = threading.Thread(target=_loop, args=(web_process_jobs(),), name="embedded-jobs", daemon=True)
        _Runner.thread.start()


def _loop(jobs: list[Job]) -> None:
    due = {
        job.name: time.monotonic() + (job.every_seconds if job.first_after_seconds is None else job.first_after_seconds)
        for job in jobs
    }
    while True:
        time.sleep(1)
        for job in jobs:
            if time.monotonic() >= due[job.name]:
                due[job.name] = time.monotonic() + job.every_seconds
                run_once(job)


def run_once(job: Job) -> None:
    close_old_connections()
    try:
        result = job.run()
        log.debug("job %s done: %s", job.name, result)
    except Exception:
        log.exception("job %s failed", job.name)
