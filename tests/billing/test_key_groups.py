"""A key may be pinned to its user's group only (staff users' keys to any): a user moved out of a group takes
the group away from keys pinned to it, on every instance within SYNC_FREQUENCY, and staff cannot pin a
key to a group its user is not in."""

import asyncio
import json

import httpx
import orjson
import pytest
from django.test import Client

from billing.accounts import users
from billing.models import AccessToken, ApiKey, User
from tests.support.factories import make_channel, make_key
from tests.support.live_server import SYNC_FREQUENCY, LiveGateway, chat, status_within
from tests.support.relay_client import HELLO, post_chat
from tests.support.task_world import fresh, midjourney_server, mj_channel, post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]


@pytest.fixture
def both_groups(fake_openai, transactional_db):
    return make_channel(fake_openai.url, groups=["default", "vip"])


def move(user: User, group: str) -> None:
    users.update_user(user, {"group": group})


def vip_key(user: User) -> str:
    """A key of `user`, pinned to "vip" while `user` is in it."""
    move(user, "vip")
    return make_key(user, group="vip")[1]


async def error_of(response) -> tuple[int, str, str]:
    error = orjson.loads(response.content)["error"]
    return response.status_code, error["code"], error["message"]


async def test_a_key_pinned_to_a_group_its_user_left_is_refused(alice, both_groups, fake_openai):
    key = await asyncio.to_thread(vip_key, alice)
    assert (await post_chat(key, HELLO)).status_code == 200
    await asyncio.to_thread(move, alice, "default")

    assert await error_of(await post_chat(key, HELLO)) == (
        403,
        "key_group_revoked",
        "this API key is pinned to group vip, which its user no longer belongs to",
    )
    assert len(fake_openai.requests) == 1
    await asyncio.to_thread(move, alice, "vip")  # back in the group: the key works again
    assert (await post_chat(key, HELLO)).status_code == 200


async def test_an_unpinned_key_follows_its_user_into_the_new_group(alice, both_groups):
    _, key = await asyncio.to_thread(make_key, alice)
    await asyncio.to_thread(move, alice, "vip")
    assert (await post_chat(key, HELLO)).status_code == 200


async def test_a_staff_users_key_may_be_pinned_to_any_group(root, both_groups):
    _, key = await asyncio.to_thread(make_key, root, group="vip")
    assert (await post_chat(key, HELLO)).status_code == 200


async def test_a_key_pinned_to_a_group_its_user_left_cannot_submit_tasks(alice, transactional_db):
    mj = fresh(midjourney_server("a"))
    await asyncio.to_thread(mj_channel, mj, groups=["default", "vip"])
    key = await asyncio.to_thread(vip_key, alice)
    await asyncio.to_thread(move, alice, "default")

    response = await post("/mj/submit/imagine", key, {"prompt": "a lighthouse"})
    assert response.status_code == 403
    assert "pinned to group vip" in orjson.loads(response.content)["description"]
    assert mj.submits == []


def api(token: str, method: str, path: str, body: dict):
    headers = {"Authorization": f"Bearer {token}"}
    return getattr(Client(), method)(path, data=json.dumps(body), content_type="application/json", headers=headers)


def test_staff_cannot_pin_a_users_key_to_a_group_the_user_is_not_in(root, alice):
    staff = AccessToken.issue(root)[1]
    refused = api(staff, "post", "/api/tokens", {"user_id": alice.pk, "group": "vip"})
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("group: alice is in group default, not vip")
    token, _ = make_key(alice)
    assert api(staff, "patch", f"/api/tokens/{token.pk}", {"group": "vip"}).status_code == 422
    assert api(staff, "patch", f"/api/tokens/{token.pk}", {"group": "default"}).status_code == 200
    assert api(staff, "post", "/api/tokens", {"group": "vip"}).status_code == 201  # root's own key: staff


def test_admin_cannot_pin_a_key_to_a_group_its_user_is_not_in(root, alice):
    client = Client()
    client.force_login(root)
    form = {"user": alice.pk, "name": "pinned", "status": "enabled", "remain_quota": 100, "group": "vip"}
    response = client.post("/admin/billing/apikey/add/", form)
    assert response.status_code == 200 and "alice is in group default, not vip" in response.content.decode()
    assert not ApiKey.objects.filter(name="pinned").exists()
    token, _ = make_key(root, group="vip")
    moved = {**form, "user": alice.pk, "name": "moved"}  # handing a pinned key to a user outside the group
    response = client.post(f"/admin/billing/apikey/{token.pk}/change/", moved)
    assert response.status_code == 200 and ApiKey.objects.get(pk=token.pk).user_id == root.pk


@pytest.mark.cache
def test_a_user_moved_on_one_instance_loses_the_pinned_group_on_the_other(alice, root, both_groups):
    first, second = LiveGateway(), LiveGateway()
    try:
        key = vip_key(alice)
        assert chat(second, key) == 200  # the key is cached there now
        staff = httpx.Client(base_url=first.url, headers={"Authorization": f"Bearer {AccessToken.issue(root)[1]}"})
        assert staff.patch(f"/api/users/{alice.pk}", json={"group": "default"}).status_code == 200
        assert status_within(second, key, 403, SYNC_FREQUENCY + 2) <= SYNC_FREQUENCY + 1
        refused = httpx.post(
            f"{second.url}/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {key}"}
        )
        assert refused.json()["error"]["code"] == "key_group_revoked"
    finally:
        first.stop()
        second.stop()
