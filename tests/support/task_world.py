"""Shared by the Midjourney, Suno and poller tests: the fake upstreams, channels on them, client calls
through the gateway (in process), the poller, and money checks."""

import asyncio
import functools

import orjson
from django.test import AsyncClient

from billing import quota
from billing.models import ApiKey, Log, User
from channels_app.models import Channel
from gateway_project.db import run_db
from tasks import polling, records
from tasks.models import Task
from tests.support.factories import make_channel
from tests.support.fakes.midjourney_upstream import FakeMidjourney, start_midjourney
from tests.support.fakes.suno_upstream import FakeSuno, start_suno

MJ_IMAGINE_COST = 50_000  # $0.1 x 500 000 quota/$ x group ratio 1
MJ_UPSCALE_COST = 25_000
SUNO_MUSIC_COST = 50_000
SUNO_LYRICS_COST = 5_000


@functools.cache
def midjourney_server(name: str = "a") -> FakeMidjourney:
    return start_midjourney(secret=f"mj-secret-{name}")


@functools.cache
def suno_server(name: str = "a") -> FakeSuno:
    return start_suno(secret=f"suno-secret-{name}")


def fresh(fake: FakeMidjourney | FakeSuno) -> FakeMidjourney | FakeSuno:
    fake.reset()
    return fake


def mj_channel(fake: FakeMidjourney, **fields) -> Channel:
    fields.setdefault("name", f"mj-{fake.port}")
    return make_channel(fake.url, models=["mj_*", "swap_face"], key=fake.secret, type="midjourney", **fields)


def suno_channel(fake: FakeSuno, **fields) -> Channel:
    fields.setdefault("name", f"suno-{fake.port}")
    return make_channel(fake.url, models=["suno_music", "suno_lyrics"], key=fake.secret, type="suno", **fields)


def post(path: str, key: str | None, body: dict, header: str = "Authorization"):
    headers = {} if key is None else {header: f"Bearer {key}" if header == "Authorization" else key}
    return AsyncClient().post(path, orjson.dumps(body), content_type="application/json", headers=headers)


def get(path: str, key: str):
    return AsyncClient().get(path, headers={"Authorization": f"Bearer {key}"})


def poll() -> polling.PollReport:
    return polling.poll_once()


async def poll_until(public_id: str, status: str, timeout: float = 10.0) -> Task:
    """Run the poller until the task reaches `status`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await run_db(poll)
        task = await Task.objects.aget(public_id=public_id)
        if task.status == status:
            return task
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"task {public_id} is {task.status} {task.progress}, never reached {status}")
        await asyncio.sleep(0.05)


def balances(username: str) -> tuple[int, int]:
    """(user quota, the user's key's remaining quota)."""
    user = User.objects.get(username=username)
    return user.quota, ApiKey.objects.get(user=user).remain_quota


def refund_logs(public_id: str) -> list[Log]:
    return list(Log.objects.filter(type=Log.Type.REFUND, request_id=public_id))


def charged_task(token: ApiKey, channel: Channel, platform: str = "midjourney", cost: int = MJ_IMAGINE_COST) -> Task:
    """A task accepted upstream and charged, as the submit path leaves it (without any HTTP)."""
    public_id = f"t{Task.objects.count() + 1}-{token.pk}"
    quota.reserve(public_id, token.pk, token.user_id, token.unlimited_quota, cost)
    new = records.NewTask(
        public_id=public_id,
        platform=platform,
        action="IMAGINE" if platform == "midjourney" else "MUSIC",
        model="mj_imagine" if platform == "midjourney" else "suno_music",
        user_id=token.user_id,
        token_id=token.pk,
        channel_id=channel.pk,
        upstream_id=f"up-{public_id}",
        prompt="a prompt",
        properties={},
        quota=cost,
    )
    charge = quota.Charge(public_id, cost, new.model, 0, 0, channel.pk, token.name, False, 0, "test charge")
    return records.record_accepted(new, charge)
