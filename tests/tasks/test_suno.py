"""Suno through the gateway, in process, against fake Suno-API servers: submit, bill, poll, fetch,
continuations on the original channel, refusals and failures."""

import asyncio

import orjson
import pytest

from billing.models import Log
from tasks.models import Task
from tests.support.factories import ALICE_QUOTA, make_key
from tests.support.fakes.suno_upstream import ERROR_MESSAGE, FakeSuno
from tests.support.fakes.task_upstream import FAILURE, Reply
from tests.support.task_world import (
    SUNO_LYRICS_COST,
    SUNO_MUSIC_COST,
    balances,
    fresh,
    get,
    poll,
    poll_until,
    post,
    refund_logs,
    suno_channel,
    suno_server,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

KEY_QUOTA = 5_000_000
SONG = {"gpt_description_prompt": "an upbeat song about a cat who loves rainy Sundays", "make_instrumental": False}


@pytest.fixture
def suno() -> FakeSuno:
    return fresh(suno_server("a"))


@pytest.fixture
def suno_b() -> FakeSuno:
    return fresh(suno_server("b"))


@pytest.fixture
def channel_a(suno, transactional_db):
    return suno_channel(suno)


async def submit(key: str, body: dict = SONG, action: str = "music") -> str:
    response = await post(f"/suno/submit/{action}", key, body)
    assert response.status_code == 200, response.content
    answer = orjson.loads(response.content)
    assert answer["code"] == "success"
    return answer["data"]


async def test_music_is_charged_when_accepted_and_polled_to_success(alice_key, suno, channel_a):
    public_id = await submit(alice_key)
    sent = suno.submits[0]
    assert sent.path == "/suno/submit/MUSIC" and sent.headers["Authorization"] == f"Bearer {suno.secret}"
    assert sent.body == {**SONG, "mv": "chirp-v3-0"}
    task = await Task.objects.aget(public_id=public_id)
    assert task.upstream_id in suno.jobs and task.upstream_id != public_id
    assert (task.status, task.quota, task.model) == ("NOT_START", SUNO_MUSIC_COST, "suno_music")
    assert await asyncio.to_thread(balances, "alice") == (ALICE_QUOTA - SUNO_MUSIC_COST, KEY_QUOTA - SUNO_MUSIC_COST)

    done = await poll_until(public_id, "SUCCESS")
    assert done.result_urls == [f"https://cdn1.suno.ai/{task.upstream_id[:8]}-clip-{n}.mp3" for n in (1, 2)]
    one = orjson.loads((await get(f"/suno/fetch/{public_id}", alice_key)).content)
    assert (one["code"], one["data"]["task_id"], one["data"]["status"]) == ("success", public_id, "SUCCESS")
    assert one["data"]["progress"] == "100%" and len(one["data"]["data"]) == 2
    assert one["data"]["finish_time"] >= one["data"]["submit_time"] > 0  # seconds, unlike Midjourney
    many = orjson.loads((await post("/suno/fetch", alice_key, {"ids": [public_id, "nope"]})).content)
    assert [found["task_id"] for found in many["data"]] == [public_id]


async def test_lyrics_are_ready_at_the_first_poll(alice_key, suno, channel_a):
    public_id = await submit(alice_key, {"prompt": "a song about autumn trains"}, action="LYRICS")
    assert (await Task.objects.aget(public_id=public_id)).quota == SUNO_LYRICS_COST
    await asyncio.to_thread(poll)
    fetched = orjson.loads((await get(f"/suno/fetch/{public_id}", alice_key)).content)["data"]
    assert fetched["status"] == "SUCCESS" and fetched["data"]["title"] == "Autumn Trains"


@pytest.mark.parametrize(
    ("action", "body", "status", "code"),
    [
        ("video", SONG, 400, "invalid_action"),
        ("lyrics", {"prompt": ""}, 400, "prompt_empty"),
        ("music", {**SONG, "continue_clip_id": "clip-1"}, 400, "task_id_required"),
        ("music", {**SONG, "continue_clip_id": "clip-1", "task_id": "not-mine"}, 404, "task_not_found"),
    ],
)
async def test_unusable_submits_are_refused_before_any_upstream(alice_key, suno, channel_a, action, body, status, code):
    response = await post(f"/suno/submit/{action}", alice_key, body)
    assert response.status_code == status and orjson.loads(response.content)["code"] == code
    assert suno.submits == []


async def test_a_continuation_goes_to_the_channel_of_the_original(alice_key, suno, suno_b, channel_a):
    origin_id = await submit(alice_key)
    origin = await poll_until(origin_id, "SUCCESS")
    await asyncio.to_thread(suno_channel, suno_b, priority=10)
    clip = origin.data["data"][0]["id"]
    continued = await submit(alice_key, {**SONG, "continue_clip_id": clip, "continue_at": 42.5, "task_id": origin_id})
    assert suno_b.submits == []
    assert suno.submits[1].body["task_id"] == origin.upstream_id
    task = await Task.objects.aget(public_id=continued)
    assert (task.channel_id, task.origin_id) == (channel_a.pk, origin.pk)


async def test_an_upstream_refusal_is_passed_on_and_charges_nothing(alice_key, suno, channel_a):
    refusal = {"code": "invalid_request", "message": "mv is not supported", "data": None}
    suno.replies.append(Reply(status=400, body=refusal))
    response = await post("/suno/submit/music", alice_key, SONG)
    assert response.status_code == 400 and orjson.loads(response.content) == refusal
    assert await Task.objects.acount() == 0
    assert await Log.objects.filter(type="consume").acount() == 0
    assert await asyncio.to_thread(balances, "alice") == (ALICE_QUOTA, KEY_QUOTA)


async def test_a_failed_song_is_refunded_once_to_key_and_user(alice_key, suno, channel_a):
    suno.outcomes.append(FAILURE)
    public_id = await submit(alice_key)
    task = await poll_until(public_id, "FAILURE")
    assert task.fail_reason == ERROR_MESSAGE and task.progress == "100%" and task.refunded
    await asyncio.to_thread(poll)
    logs = await asyncio.to_thread(refund_logs, public_id)
    assert len(logs) == 1 and logs[0].quota == SUNO_MUSIC_COST and ERROR_MESSAGE in logs[0].content
    assert await asyncio.to_thread(balances, "alice") == (ALICE_QUOTA, KEY_QUOTA)


async def test_fetching_someone_elses_task_is_404(alice_key, bob, suno, channel_a):
    public_id = await submit(alice_key)
    _, bobs_key = await asyncio.to_thread(make_key, bob)
    response = await get(f"/suno/fetch/{public_id}", bobs_key)
    assert response.status_code == 404 and orjson.loads(response.content)["code"] == "task_not_found"
