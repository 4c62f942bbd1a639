"""Celery tasks: the periodic jobs, scheduled by beat (see settings.CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from tasks.jobs import periodic_jobs


@shared_task(name="tasks.run_job")
def run_job(name: str) -> str:
    job = next(job for job in periodic_jobs() if job.name == name)
    return str(job.run())
