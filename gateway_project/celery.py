"""Celery app: `celery -A gateway_project worker` / `beat`. Broker: CELERY_BROKER_URL (default REDIS_CONN_STRING).

Beat's schedule is tasks.jobs.periodic_jobs(), the same list the embedded runner uses.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

app = Celery("gateway_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def schedule_periodic_jobs(sender: Celery, **_kwargs) -> None:
    from tasks.jobs import periodic_jobs

    for job in periodic_jobs():
        # A worker that was down must not work through a backlog of identical runs: each expires after a period.
        sender.add_periodic_task(
            job.every_seconds,
            sender.signature("tasks.run_job", args=(job.name,)),
            name=job.name,
            expires=job.every_seconds,
        )
