"""The poller and the notify receiver: batched fetches per channel, refunds exactly once however many
pollers race, timeouts, vanished channels, and callbacks that cannot end a task on their own word."""

import asyncio
import threading
from datetime import timedelta

import orjson
import pytest
from django.conf import settings
from django.db import connection
from django.test import AsyncClient, override_settings
from django.utils import timezone

from billing import quota
from billing.models import Log
from channels_app.models import Channel
from gateway_project.db import run_db
from tasks import polling, records
from tasks.models import Task
from tests.support.factories import ALICE_QUOTA, make_key
from tests.support.fakes.midjourney_upstream import FakeMidjourney
from tests.support.fakes.task_upstream import FAILURE, STUCK
from tests.support.task_world import (
    MJ_IMAGINE_COST,
    balances,
    charged_task,
    fresh,
    midjourney_server,
    mj_channel,
    poll,
    poll_until,
    post,
    refund_logs,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

KEY_QUOTA = 5_000_000
IMAGINE = {"prompt": "a lighthouse at dusk"}


@pytest.fixture
def mj() -> FakeMidjourney:
    return fresh(midjourney_server("a"))


@pytest.fixture
def mj_b() -> FakeMidjourney:
    return fresh(midjourney_server("b"))


@pytest.fixture
def channel_a(mj, transactional_db) -> Channel:
    return mj_channel(mj)


async def imagine(key: str) -> Task:
    response = await post("/mj/submit/imagine", key, IMAGINE)
    return await Task.objects.aget(public_id=orjson.loads(response.content)["result"])


def in_thread(work, barrier: threading.Barrier):
    """Run `work` in a thread of its own (own database connection) once every racer is ready."""

    def run():
        barrier.wait()
        try:
            return work()
        finally:
            connection.close()

    return asyncio.to_thread(run)


async def test_a_failed_task_is_refunded_once_when_two_pollers_race(alice_key, mj, channel_a):
    mj.outcomes.append(FAILURE)
    task = await imagine(alice_key)
    await asyncio.sleep(mj.step_seconds * 4)  # the upstream job has failed by now

    barrier = threading.Barrier(2)
    reports = await asyncio.gather(in_thread(polling.poll_once, barrier), in_thread(polling.poll_once, barrier))

    assert sum(report.updated for report in reports) == 1
    await task.arefresh_from_db()
    assert (task.status, task.progress, task.refunded) == ("FAILURE", "100%", True)
    assert task.fail_reason == "Midjourney could not render the job"
    assert len(await asyncio.to_thread(refund_logs, task.public_id)) == 1
    assert await asyncio.to_thread(balances, "alice") == (ALICE_QUOTA, KEY_QUOTA)


def test_racing_failures_of_one_task_pay_back_once(alice, channel_a):
    token, _ = make_key(alice)
    task = charged_task(token, channel_a)
    barrier = threading.Barrier(6)
    results: list[bool] = []

    def racer() -> None:
        barrier.wait()
        try:
            results.append(records.fail(task.pk, "given up"))
        finally:
            connection.close()

    threads = [threading.Thread(target=racer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert len(refund_logs(task.public_id)) == 1
    assert balances("alice") == (ALICE_QUOTA, KEY_QUOTA)
    charge = quota.Charge(task.public_id, MJ_IMAGINE_COST, "mj_imagine", 0, 0, None, "app", False, 0, "again")
    assert quota.refund(charge) is False  # billing's own guard, without the task row's


async def test_a_stuck_task_is_given_up_after_the_timeout_and_refunded(alice_key, mj, channel_a):
    mj.outcomes.append(STUCK)
    task = await imagine(alice_key)
    await asyncio.sleep(mj.step_seconds * 4)
    await run_db(poll)
    await task.arefresh_from_db()
    assert task.status == "IN_PROGRESS"

    long_ago = timezone.now() - timedelta(seconds=settings.TASK_TIMEOUT_SECONDS + 1)
    await Task.objects.filter(pk=task.pk).aupdate(submitted_at=long_ago)
    report = await run_db(poll)
    await task.arefresh_from_db()
    assert report.timed_out == 1 and task.status == "FAILURE" and task.refunded
    assert f"within {settings.TASK_TIMEOUT_SECONDS} seconds" in task.fail_reason
    assert (await run_db(poll)).timed_out == 0
    assert len(await asyncio.to_thread(refund_logs, task.public_id)) == 1


async def test_a_task_whose_channel_was_deleted_fails_with_a_refund(alice_key, mj, channel_a):
    task = await imagine(alice_key)
    await Channel.objects.filter(pk=channel_a.pk).adelete()
    assert (await run_db(poll)).orphaned == 1
    await task.arefresh_from_db()
    assert task.status == "FAILURE" and task.refunded
    assert await asyncio.to_thread(balances, "alice") == (ALICE_QUOTA, KEY_QUOTA)


async def test_each_channel_is_asked_once_for_all_its_open_tasks(alice_key, mj, mj_b, channel_a):
    on_a = [await imagine(alice_key) for _ in range(3)]
    await asyncio.to_thread(mj_channel, mj_b, priority=10)
    on_b = [await imagine(alice_key) for _ in range(2)]
    await run_db(poll)
    assert [sorted(ids) for ids in mj.fetches] == [sorted(task.upstream_id for task in on_a)]
    assert [sorted(ids) for ids in mj_b.fetches] == [sorted(task.upstream_id for task in on_b)]


def notify(channel_id: int | None, body: dict):
    query = "" if channel_id is None else f"?channel={channel_id}"
    return AsyncClient().post(f"/mj/notify{query}", orjson.dumps(body), content_type="application/json")


async def test_notify_moves_progress_of_a_known_task_without_an_api_key(alice_key, mj, channel_a):
    mj.step_seconds = 60
    task = await imagine(alice_key)
    progress = {"id": task.upstream_id, "status": "IN_PROGRESS", "progress": "42%", "imageUrl": "https://evil/x.png"}
    assert (await notify(channel_a.pk, progress)).status_code == 200
    await task.arefresh_from_db()
    assert (task.status, task.progress) == ("IN_PROGRESS", "42%")
    assert (task.result_urls, task.data) == ([], {})  # results come only from the upstream itself


async def test_notify_for_an_unknown_task_or_another_channel_is_refused(alice_key, mj, mj_b, channel_a):
    task = await imagine(alice_key)
    other = await asyncio.to_thread(mj_channel, mj_b)
    body = {"id": task.upstream_id, "status": "IN_PROGRESS", "progress": "42%"}
    assert (await notify(other.pk, body)).status_code == 404
    assert (await notify(channel_a.pk, {**body, "id": "123"})).status_code == 404
    assert (await notify(None, body)).status_code == 400
    await task.arefresh_from_db()
    assert task.progress == "0%"


async def test_a_notified_failure_counts_only_when_the_upstream_confirms_it(alice_key, mj, channel_a):
    mj.step_seconds = 60
    honest = await imagine(alice_key)
    forged = {"id": honest.upstream_id, "status": "FAILURE", "failReason": "trust me"}
    assert (await notify(channel_a.pk, forged)).status_code == 200
    await honest.arefresh_from_db()
    assert honest.status == "SUBMITTED" and not honest.refunded

    mj.step_seconds = 0.05
    mj.outcomes.append(FAILURE)
    failing = await imagine(alice_key)
    await asyncio.sleep(0.3)
    assert (await notify(channel_a.pk, {**forged, "id": failing.upstream_id})).status_code == 200
    await failing.arefresh_from_db()
    assert failing.status == "FAILURE" and failing.refunded
    assert failing.fail_reason == "Midjourney could not render the job"
    assert await Log.objects.filter(type="refund").acount() == 1


@override_settings(SERVER_ADDRESS="https://gateway.example")
async def test_with_a_server_address_the_proxy_is_told_where_to_notify(alice_key, mj, channel_a):
    task = await imagine(alice_key)
    assert mj.submits[0].body["notifyHook"] == f"https://gateway.example/mj/notify?channel={channel_a.pk}"
    await poll_until(task.public_id, "SUCCESS")
