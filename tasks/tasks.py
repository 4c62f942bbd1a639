"""Celery tasks: the periodic jobs, scheduled by beat (see gateway_project/celery.py)."""

from celery import shared_task

from tasks.jobs import periodic_jobs


@shared_task(name="tasks.run_job")
def run_job(name: str) -> str:
    job = next(job for job in periodic_jobs() if job.name == name)
    return str(job.run())
