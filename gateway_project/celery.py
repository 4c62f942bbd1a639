"""Celery app: `celery -A gateway_project worker` / `beat`. Broker: CELERY_BROKER_URL (default REDIS_CONN_STRING)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

app = Celery("gateway_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
