"""Who runs the poller: a real Celery worker on the Redis broker, or the embedded runner of the web process;
UPDATE_TASK=false turns it off. Also where operators look at tasks: GET /api/tasks and the admin."""

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
import redis
from celery import Celery
from django.conf import settings
from django.test import Client, override_settings

from billing.models import AccessToken
from tasks import embedded
from tasks.jobs import periodic_jobs
from tasks.models import Task
from tests.support.factories import make_key
from tests.support.fakes.midjourney_upstream import FakeMidjourney
from tests.support.live_server import ROOT, database_env
from tests.support.redis_dbs import redis_url
from tests.support.task_world import charged_task, fresh, midjourney_server, mj_channel, post, refund_logs

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

BROKER = redis_url(14)


@pytest.fixture
def mj() -> FakeMidjourney:
    return fresh(midjourney_server("a"))


async def imagine(key: str) -> str:
    response = await post("/mj/submit/imagine", key, {"prompt": "a lighthouse at dusk"})
    return orjson.loads(response.content)["result"]


def poll_job():
    return next(job for job in periodic_jobs() if job.name == "poll_tasks")


async def status_of(public_id: str) -> str:
    return (await Task.objects.aget(public_id=public_id)).status


def test_polling_runs_every_task_poll_interval_unless_update_task_is_off():
    assert poll_job().every_seconds == settings.TASK_POLL_INTERVAL == 15
    from gateway_project.celery import app

    app.loader.import_default_modules()
    app.finalize()
    assert app.conf.beat_schedule["poll_tasks"]["schedule"] == settings.TASK_POLL_INTERVAL
    with override_settings(UPDATE_TASK=False):
        assert "poll_tasks" not in [job.name for job in periodic_jobs()]


async def test_the_embedded_runner_polls_a_task_to_success(alice_key, mj, transactional_db):
    await asyncio.to_thread(mj_channel, mj)
    public_id = await imagine(alice_key)
    for _ in range(100):
        await asyncio.to_thread(embedded.run_once, poll_job())
        if await status_of(public_id) == "SUCCESS":
            break
        await asyncio.sleep(0.05)
    assert await status_of(public_id) == "SUCCESS"


def start_worker(queue: str, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        **database_env(),
        "SESSION_SECRET": settings.SECRET_KEY,
        "REDIS_CONN_STRING": settings.REDIS_CONN_STRING,
        "CELERY_BROKER_URL": BROKER,
        "UPDATE_TASK": "true",
    }
    command = [str(Path(sys.executable).parent / "celery"), "-A", "gateway_project", "worker", "--pool", "solo"]
    command += ["-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


async def test_a_real_celery_worker_polls_a_task_to_success(alice_key, mj, transactional_db, tmp_path):
    await asyncio.to_thread(mj_channel, mj)
    public_id = await imagine(alice_key)
    queue = f"test-tasks-{uuid.uuid4().hex}"
    worker = start_worker(queue, tmp_path / "worker.log")
    sender = Celery("probe", broker=BROKER)
    try:
        for _ in range(120):  # the worker needs a few seconds to start; polls wait in the queue meanwhile
            sender.send_task("tasks.run_job", args=["poll_tasks"], queue=queue)
            await asyncio.sleep(0.5)
            if await status_of(public_id) == "SUCCESS" or worker.poll() is not None:
                break
        log = (tmp_path / "worker.log").read_text()
        assert await status_of(public_id) == "SUCCESS", log[-3000:]
    finally:
        worker.terminate()
        worker.wait(20)
        sender.close()
        redis.Redis.from_url(BROKER).delete(queue)


def test_api_lists_ones_own_tasks_and_staff_all(alice, bob, root, transactional_db):
    channel = mj_channel(midjourney_server("a"))
    alices_key, bobs_key = make_key(alice)[0], make_key(bob)[0]
    mine = charged_task(alices_key, channel)
    charged_task(alices_key, channel, platform="suno")
    charged_task(bobs_key, channel)

    def listed(user, query: str = "") -> tuple[int, list[dict]]:
        response = Client().get(f"/api/tasks{query}", headers={"Authorization": f"Bearer {AccessToken.issue(user)[1]}"})
        body = response.json()
        return response.status_code, body.get("items", body)

    status, items = listed(alice)
    assert status == 200 and {item["user_id"] for item in items} == {alice.pk} and len(items) == 2
    status, items = listed(alice, "?platform=midjourney&status=NOT_START")
    assert [item["id"] for item in items] == [mine.public_id] and items[0]["quota"] == mine.quota
    assert "upstream_id" not in items[0]
    assert listed(alice, f"?user_id={bob.pk}")[0] == 403
    assert len(listed(root)[1]) == 3 and len(listed(root, f"?user_id={bob.pk}")[1]) == 1
    assert listed(root, "?status=DONE")[0] == 422


def test_admin_filters_tasks_and_gives_up_on_stuck_ones_with_a_refund(alice, root, transactional_db):
    channel = mj_channel(midjourney_server("a"))
    task = charged_task(make_key(alice)[0], channel)
    admin = Client()
    admin.force_login(root)
    page = admin.get("/admin/tasks/task/?platform__exact=midjourney&status__exact=NOT_START")
    assert page.status_code == 200 and task.public_id in page.content.decode()
    admin.post("/admin/tasks/task/", {"action": "fail_and_refund", "_selected_action": [task.pk]})
    task.refresh_from_db()
    assert task.status == "FAILURE" and task.refunded and "given up by root" in task.fail_reason
    assert len(refund_logs(task.public_id)) == 1
