"""Midjourney through the gateway, in process, against fake Midjourney-Proxies: submit, bill, poll, fetch,
follow-ups on the original channel, and what a refusal costs (nothing)."""

import asyncio

import orjson
import pytest
from django.test import override_settings

from billing.models import Log, Reservation
from tasks.models import Task
from tests.support.factories import ALICE_QUOTA, make_key
from tests.support.fakes.midjourney_upstream import SEED, FakeMidjourney
from tests.support.fakes.task_upstream import Reply
from tests.support.task_world import (
    MJ_IMAGINE_COST,
    MJ_UPSCALE_COST,
    balances,
    fresh,
    get,
    midjourney_server,
    mj_channel,
    poll,
    poll_until,
    post,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

KEY_QUOTA = 5_000_000
IMAGINE = {"prompt": "a lighthouse at dusk --ar 3:2", "state": "order-42", "notifyHook": "https://client.example/hook"}


@pytest.fixture
def mj() -> FakeMidjourney:
    return fresh(midjourney_server("a"))


@pytest.fixture
def mj_b() -> FakeMidjourney:
    return fresh(midjourney_server("b"))


@pytest.fixture
def channel_a(mj, transactional_db):
    return mj_channel(mj)


async def imagine(key: str, path: str = "/mj/submit/imagine", header: str = "Authorization") -> str:
    return await imagine_like(key, path, IMAGINE, header)


async def imagine_like(key: str, path: str, body: dict, header: str = "Authorization") -> str:
    """Submit and return the task id the client was given (asserting the proxy accepted)."""
    response = await post(path, key, body, header)
    assert response.status_code == 200, response.content
    body = orjson.loads(response.content)
    assert body["code"] == 1
    return body["result"]


async def test_imagine_is_charged_when_accepted_and_polled_to_success(alice_key, mj, channel_a):
    mj.step_seconds = 0.4
    public_id = await imagine(alice_key)

    sent = mj.submits[0]
    assert sent.path == "/mj/submit/imagine" and sent.headers["mj-api-secret"] == mj.secret
    assert "notifyHook" not in sent.body and sent.body["prompt"] == IMAGINE["prompt"]
    task = await Task.objects.aget(public_id=public_id)
    assert task.upstream_id in mj.jobs and task.upstream_id != public_id  # clients only see our id
    assert (task.status, task.progress, task.quota, task.model) == ("NOT_START", "0%", MJ_IMAGINE_COST, "mj_imagine")
    log = await Log.objects.aget(request_id=public_id)
    assert (log.type, log.model, log.quota, log.channel_id) == ("consume", "mj_imagine", MJ_IMAGINE_COST, channel_a.pk)
    assert await asyncio.to_thread(balances, "alice") == (ALICE_QUOTA - MJ_IMAGINE_COST, KEY_QUOTA - MJ_IMAGINE_COST)

    await asyncio.sleep(0.5)
    in_progress = await poll_until(public_id, "IN_PROGRESS")
    assert in_progress.progress in ("25%", "75%") and in_progress.result_urls[0].endswith("-preview.png")
    await poll_until(public_id, "SUCCESS")

    fetched = orjson.loads((await get(f"/mj/task/{public_id}/fetch", alice_key)).content)
    assert fetched["id"] == public_id and fetched["status"] == "SUCCESS" and fetched["progress"] == "100%"
    assert fetched["imageUrl"].endswith(f"{task.upstream_id}.png") and len(fetched["buttons"]) == 4
    assert fetched["state"] == "order-42" and fetched["action"] == "IMAGINE"
    assert fetched["properties"] == {"finalPrompt": IMAGINE["prompt"]}  # the proxy's account ids stay inside
    assert fetched["submitTime"] > 0 and fetched["finishTime"] >= fetched["startTime"] > 0
    assert await Log.objects.filter(type="refund").acount() == 0


async def test_mj_api_secret_header_is_an_api_key_too(alice_key, mj, channel_a):
    public_id = await imagine(alice_key, header="mj-api-secret")
    assert await Task.objects.filter(public_id=public_id).aexists()


async def test_missing_key_gets_401_in_midjourney_shape(channel_a):
    response = await post("/mj/submit/imagine", None, IMAGINE)
    body = orjson.loads(response.content)
    assert response.status_code == 401 and body["code"] == 4 and body["error"]["code"] == "missing_api_key"


async def test_a_refused_submit_is_answered_as_the_proxy_said_and_charges_nothing(alice_key, mj, channel_a):
    refusal = {"code": 24, "description": "banned prompt", "result": None, "properties": {"bannedWord": "dusk"}}
    mj.replies.append(Reply(body=refusal))
    response = await post("/mj/submit/imagine", alice_key, IMAGINE)
    assert response.status_code == 200 and orjson.loads(response.content) == refusal
    assert await Task.objects.acount() == 0
    assert await Log.objects.filter(type="consume").acount() == 0
    assert await asyncio.to_thread(balances, "alice") == (ALICE_QUOTA, KEY_QUOTA)
    assert await Reservation.objects.filter(state="held").acount() == 0


async def test_without_quota_nothing_is_submitted(alice, mj, channel_a):
    _, poor = await asyncio.to_thread(make_key, alice, remain_quota=MJ_IMAGINE_COST - 1)
    response = await post("/mj/submit/imagine", poor, IMAGINE)
    body = orjson.loads(response.content)
    assert response.status_code == 403 and (body["code"], body["type"]) == (4, "quota_not_enough")
    assert mj.submits == []


async def test_a_failure_before_acceptance_is_retried_on_another_channel(alice_key, mj, mj_b, transactional_db):
    first = await asyncio.to_thread(mj_channel, mj, priority=10)
    second = await asyncio.to_thread(mj_channel, mj_b)
    mj.replies.append(Reply(status=500, body={"error": "account pool exhausted"}))
    public_id = await imagine(alice_key)
    task = await Task.objects.aget(public_id=public_id)
    assert task.channel_id == second.pk and len(mj.submits) == 1 and first.pk != second.pk
    assert await Log.objects.filter(type="consume").acount() == 1


@override_settings(TASK_SUBMIT_TIMEOUT=0.3)
async def test_a_submit_that_may_have_been_accepted_is_never_sent_elsewhere(alice_key, mj, mj_b, transactional_db):
    await asyncio.to_thread(mj_channel, mj, priority=10)
    await asyncio.to_thread(mj_channel, mj_b)
    mj.replies.append(Reply(delay=1.0))  # the proxy takes the job but answers too late
    response = await post("/mj/submit/imagine", alice_key, IMAGINE)
    assert response.status_code == 504 and orjson.loads(response.content)["code"] == 5
    assert mj_b.submits == []
    assert await Task.objects.acount() == 0
    assert await asyncio.to_thread(balances, "alice") == (ALICE_QUOTA, KEY_QUOTA)


async def test_follow_ups_go_to_the_channel_that_ran_the_original(alice_key, mj, mj_b, channel_a):
    origin_id = await imagine(alice_key)
    origin = await poll_until(origin_id, "SUCCESS")
    await asyncio.to_thread(mj_channel, mj_b, priority=10)  # now the preferred channel for new jobs
    button = origin.data["buttons"][1]["customId"]

    response = await post("/mj/submit/action", alice_key, {"taskId": origin_id, "customId": button})
    action_id = orjson.loads(response.content)["result"]
    response = await post("/mj/submit/simple-change", alice_key, {"content": f"{origin_id} U3"})
    change_id = orjson.loads(response.content)["result"]

    assert mj_b.submits == []
    assert mj.submits[1].body == {"taskId": origin.upstream_id, "customId": button}
    assert mj.submits[2].body == {"content": f"{origin.upstream_id} U3"}
    for public_id in (action_id, change_id):
        follow_up = await Task.objects.aget(public_id=public_id)
        assert (follow_up.channel_id, follow_up.origin_id, follow_up.action) == (channel_a.pk, origin.pk, "UPSCALE")
        assert follow_up.quota == MJ_UPSCALE_COST and follow_up.prompt == IMAGINE["prompt"]
    assert (await post("/mj/submit/imagine", alice_key, IMAGINE)).status_code == 200
    assert len(mj_b.submits) == 1


async def test_follow_ups_need_a_finished_task_of_ones_own(alice_key, bob, mj, channel_a):
    origin_id = await imagine(alice_key)
    change = {"taskId": origin_id, "action": "UPSCALE", "index": 1}
    response = await post("/mj/submit/change", alice_key, change)
    assert response.status_code == 400 and orjson.loads(response.content)["type"] == "task_status_not_success"
    await poll_until(origin_id, "SUCCESS")
    _, bobs_key = await asyncio.to_thread(make_key, bob)
    response = await post("/mj/submit/change", bobs_key, change)
    assert response.status_code == 404 and orjson.loads(response.content)["type"] == "task_not_found"
    assert (await get(f"/mj/task/{origin_id}/fetch", bobs_key)).status_code == 404
    assert len(mj.submits) == 1


@pytest.mark.parametrize(
    ("route", "body", "code"),
    [
        ("imagine", {"prompt": " "}, "prompt_is_required"),
        ("action", {"taskId": "1", "customId": "MJ::BOOKMARK::x"}, "invalid_custom_id"),
        ("change", {"taskId": "1", "action": "UPSCALE", "index": 9}, "invalid_index"),
        ("simple-change", {"content": "1 U9"}, "invalid_content"),
    ],
)
async def test_unusable_bodies_get_400_and_reach_no_upstream(alice_key, mj, channel_a, route, body, code):
    response = await post(f"/mj/submit/{route}", alice_key, body)
    assert response.status_code == 400 and orjson.loads(response.content)["type"] == code
    assert mj.submits == []


async def test_speed_mode_prefixes_are_stripped_upstream(alice_key, mj, channel_a):
    public_id = await imagine(alice_key, path="/mj-relax/mj/submit/imagine")
    assert mj.submits[0].path == "/mj/submit/imagine"
    assert (await Task.objects.aget(public_id=public_id)).properties["mode"] == "mj-relax"
    assert (await get(f"/mj-fast/mj/task/{public_id}/fetch", alice_key)).status_code == 200


async def test_list_by_condition_answers_only_ones_own_tasks(alice_key, bob, mj, channel_a):
    first, second = await imagine(alice_key), await imagine(alice_key)
    _, bobs_key = await asyncio.to_thread(make_key, bob)
    bobs = await imagine(bobs_key)
    response = await post("/mj/task/list-by-condition", alice_key, {"ids": [second, bobs, "404", first]})
    assert [task["id"] for task in orjson.loads(response.content)] == [second, first]


async def test_image_seed_is_asked_of_the_original_channel_for_free(alice_key, mj, channel_a):
    public_id = await imagine(alice_key)
    await poll_until(public_id, "SUCCESS")
    response = await get(f"/mj/task/{public_id}/image-seed", alice_key)
    assert orjson.loads(response.content) == {"code": 1, "description": "success", "result": SEED}
    assert await Log.objects.filter(type="consume").acount() == 1


async def test_face_swap_needs_both_images_and_is_priced_as_swap_face(alice_key, mj, channel_a):
    source = {"sourceBase64": "data:image/png;base64,AA"}
    response = await post("/mj/insight-face/swap", alice_key, source)
    assert response.status_code == 400 and orjson.loads(response.content)["type"] == "target_base64_is_required"
    both = {**source, "targetBase64": source["sourceBase64"]}
    public_id = await imagine_like(alice_key, "/mj/insight-face/swap", both)
    task = await Task.objects.aget(public_id=public_id)
    assert (task.action, task.model, task.quota) == ("SWAP_FACE", "swap_face", 25_000)
    assert mj.submits[-1].path == "/mj/insight-face/swap"


async def test_an_upload_is_charged_and_done_at_once(alice_key, mj, channel_a):
    response = await post("/mj/submit/upload-discord-images", alice_key, {"base64Array": ["data:image/png;base64,AA"]})
    urls = orjson.loads(response.content)["result"]
    assert urls == ["https://cdn.discordapp.com/attachments/fake/upload-0.png"]
    task = await Task.objects.aget()
    assert (task.status, task.progress, task.result_urls, task.model) == ("SUCCESS", "100%", urls, "mj_upload")
    assert task.quota == 25_000
    assert (await asyncio.to_thread(poll)).tasks == 0
