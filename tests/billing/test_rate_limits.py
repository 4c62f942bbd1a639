"""Per-key and per-user request and token limits per minute: 429 with Retry-After, nothing charged."""

import asyncio
import pickle
import time
from collections import Counter

import httpx
import orjson
import pytest
from django.conf import settings
from django.test import Client, override_settings

from billing.accounts.key_auth import KeyInfo
from billing.accounts.ratelimit import Limits, limits_for_key
from billing.models import AccessToken, ApiKey, Log, User
from tests.support.factories import make_key
from tests.support.live_server import LiveGateway
from tests.support.relay_client import HELLO, post_chat

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_a_fresh_minute(needed_seconds: int = 20) -> None:
    """Counters are per wall-clock minute: start where the window has room for the whole test."""
    left = 60 - time.time() % 60
    if left < needed_seconds:
        time.sleep(left + 0.1)


@override_settings(RATE_LIMITS={"default": {"key_rpm": 2}})
async def test_the_third_request_of_a_minute_gets_429_with_retry_after(alice_key, openai_channel):
    await asyncio.to_thread(wait_for_a_fresh_minute)
    assert [(await post_chat(alice_key)).status_code for _ in range(2)] == [200, 200]
    limited = await post_chat(alice_key)
    assert limited.status_code == 429
    assert 0 < int(limited["Retry-After"]) <= 60
    assert orjson.loads(limited.content)["error"]["code"] == "rate_limit_exceeded"
    assert await Log.objects.filter(type="consume").acount() == 2


@override_settings(RATE_LIMITS={"default": {"key_tpm": 10}})
async def test_a_key_over_its_tokens_per_minute_is_refused(alice_key, openai_channel):
    await asyncio.to_thread(wait_for_a_fresh_minute)
    assert (await post_chat(alice_key)).status_code == 200  # 12 + 6 tokens: over the limit from now on
    assert (await post_chat(alice_key)).status_code == 429


@override_settings(RATE_LIMITS={"vip": {"user_rpm": 1}})
async def test_user_limits_span_keys_and_follow_the_group(root, openai_channel):
    """root, as staff, may pin keys to a group of its own choosing."""
    openai_channel.groups = ["default", "vip"]
    await openai_channel.asave()
    await asyncio.to_thread(wait_for_a_fresh_minute)
    _, first = await asyncio.to_thread(make_key, root, group="vip")
    _, second = await asyncio.to_thread(make_key, root, group="vip")
    _, other_group = await asyncio.to_thread(make_key, root)
    assert (await post_chat(first)).status_code == 200
    assert (await post_chat(second)).status_code == 429
    assert (await post_chat(other_group)).status_code == 200  # "default" has no limit here


BURST = 200
BURST_RPM = 50


async def burst(urls: list[str], key: str, count: int) -> Counter:
    """`count` requests at once, spread evenly over `urls`; how many got each status (or which error)."""
    limits = httpx.Limits(max_connections=count)  # all in flight together, none queued in the client
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        calls = [
            client.post(
                f"{urls[n % len(urls)]}/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {key}"}
            )
            for n in range(count)
        ]
        answers = await asyncio.gather(*calls, return_exceptions=True)
    return Counter(a.status_code if isinstance(a, httpx.Response) else type(a).__name__ for a in answers)


@pytest.mark.backend
@pytest.mark.cache
def test_a_limit_holds_exactly_across_two_processes_under_a_burst(alice, openai_channel):
    if not settings.REDIS_CONN_STRING:
        pytest.skip("a limit is shared across processes only through Redis (this leg has none)")
    _, key = make_key(alice)
    limits = orjson.dumps({"default": {"key_rpm": BURST_RPM}}).decode()
    first, second = LiveGateway({"RATE_LIMITS": limits}), LiveGateway({"RATE_LIMITS": limits})
    try:
        wait_for_a_fresh_minute(40)
        statuses = asyncio.run(burst([first.url, second.url], key, BURST))
    finally:
        first.stop()
        second.stop()
    assert statuses == {200: BURST_RPM, 429: BURST - BURST_RPM}
    assert Log.objects.filter(type="consume").count() == BURST_RPM  # refused requests charge nothing


# Per-key and per-user overrides: None = the group's limit, 0 = no limit, N = N per minute.


def key_info(**overrides) -> KeyInfo:
    fields = dict(token_id=1, token_name="app", user_id=1, group="default", unlimited=False, enabled=True)
    fields.update(user_active=True, is_staff=False, expires_at=None, models=None, allow_ips=None)
    return KeyInfo(**{**fields, **overrides})


@override_settings(RATE_LIMITS={"default": {"key_rpm": 60, "key_tpm": 1000, "user_rpm": 100, "user_tpm": 5000}})
def test_key_and_user_overrides_replace_the_groups_limits_where_set():
    assert limits_for_key(key_info()) == Limits(key_rpm=60, key_tpm=1000, user_rpm=100, user_tpm=5000)
    tightened = key_info(rpm_limit=5, tpm_limit=0, user_rpm_limit=0, user_tpm_limit=50)
    assert limits_for_key(tightened) == Limits(key_rpm=5, key_tpm=0, user_rpm=0, user_tpm=50)


@override_settings(RATE_LIMITS={})
def test_a_key_override_applies_even_when_its_group_has_no_limits():
    assert limits_for_key(key_info(rpm_limit=3)) == Limits(key_rpm=3)
    assert limits_for_key(key_info(rpm_limit=3)).any


def test_a_key_cached_by_an_older_version_loads_with_the_group_defaults():
    info = key_info(rpm_limit=3)
    for name in ("rpm_limit", "tpm_limit", "user_rpm_limit", "user_tpm_limit"):
        object.__delattr__(info, name)  # what an entry pickled before these fields existed carries
    assert pickle.loads(pickle.dumps(info)).rpm_limit is None


@override_settings(RATE_LIMITS={"default": {"key_rpm": 5}})
async def test_a_key_with_a_lower_rpm_limit_is_refused_before_its_group_limit(alice, openai_channel):
    await asyncio.to_thread(wait_for_a_fresh_minute)
    _, key = await asyncio.to_thread(make_key, alice, rpm_limit=1)
    assert [(await post_chat(key)).status_code for _ in range(2)] == [200, 429]


@override_settings(RATE_LIMITS={"default": {"key_rpm": 1}})
async def test_a_key_with_rpm_limit_0_is_not_limited(alice, openai_channel):
    await asyncio.to_thread(wait_for_a_fresh_minute)
    _, key = await asyncio.to_thread(make_key, alice, rpm_limit=0)
    assert [(await post_chat(key)).status_code for _ in range(3)] == [200, 200, 200]


@override_settings(RATE_LIMITS={"default": {"key_rpm": 100}})
async def test_a_key_with_its_own_tpm_limit_is_refused_once_it_is_used(alice, openai_channel):
    await asyncio.to_thread(wait_for_a_fresh_minute)
    _, key = await asyncio.to_thread(make_key, alice, tpm_limit=10)
    assert (await post_chat(key)).status_code == 200  # 12 + 6 tokens: over this key's limit from now on
    refused = await post_chat(key)
    assert refused.status_code == 429 and "token limit of 10" in orjson.loads(refused.content)["error"]["message"]


@override_settings(RATE_LIMITS={"default": {"key_rpm": 100}})
async def test_a_users_rpm_limit_spans_all_their_keys(alice, openai_channel):
    await asyncio.to_thread(wait_for_a_fresh_minute)
    await User.objects.filter(pk=alice.pk).aupdate(rpm_limit=1)
    _, first = await asyncio.to_thread(make_key, alice)
    _, second = await asyncio.to_thread(make_key, alice)
    assert (await post_chat(first)).status_code == 200
    assert (await post_chat(second)).status_code == 429


@override_settings(RATE_LIMITS={})
async def test_a_key_limit_holds_when_its_group_has_no_limits(alice, openai_channel):
    await asyncio.to_thread(wait_for_a_fresh_minute)
    _, key = await asyncio.to_thread(make_key, alice, rpm_limit=1)
    assert [(await post_chat(key)).status_code for _ in range(2)] == [200, 429]


@pytest.mark.backend
@pytest.mark.cache
@override_settings(RATE_LIMITS={"default": {"key_rpm": 100}})
@pytest.mark.parametrize("owner, then", [("tokens", [429]), ("users", [200, 429])])
def test_a_limit_changed_through_the_api_applies_at_once_although_the_key_is_cached(
    alice, access_token, openai_channel, owner, then
):
    """The key's requests are counted already (its group limits keys); the user's only once a limit applies."""
    wait_for_a_fresh_minute()
    token, key = make_key(alice)
    api = Client(headers={"Authorization": f"Bearer {access_token}"})

    def chat() -> int:
        headers = {"Authorization": f"Bearer {key}"}
        return (
            Client().post("/v1/chat/completions", HELLO, content_type="application/json", headers=headers).status_code
        )

    assert chat() == 200  # the key is in the cache now, with no limit of its own or its user's
    row = token.pk if owner == "tokens" else alice.pk
    changed = api.patch(f"/api/{owner}/{row}", {"rpm_limit": 1}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["rpm_limit"] == 1
    assert [chat() for _ in then] == then


def test_staff_set_and_clear_a_keys_limits_through_the_api(alice, access_token):
    api = Client(headers={"Authorization": f"Bearer {access_token}"})
    created = api.post(
        "/api/tokens", {"user_id": alice.pk, "rpm_limit": 0, "tpm_limit": 5000}, content_type="application/json"
    )
    assert created.status_code == 201
    assert (created.json()["rpm_limit"], created.json()["tpm_limit"]) == (0, 5000)
    cleared = api.patch(f"/api/tokens/{created.json()['id']}", {"rpm_limit": None}, content_type="application/json")
    assert (cleared.json()["rpm_limit"], cleared.json()["tpm_limit"]) == (None, 5000)
    assert ApiKey.objects.get(pk=created.json()["id"]).rpm_limit is None


def test_staff_set_and_clear_a_users_limits_through_the_api(access_token):
    api = Client(headers={"Authorization": f"Bearer {access_token}"})
    created = api.post("/api/users", {"username": "carol", "rpm_limit": 30}, content_type="application/json")
    assert created.status_code == 201 and (created.json()["rpm_limit"], created.json()["tpm_limit"]) == (30, None)
    user_id = created.json()["id"]
    changed = api.patch(f"/api/users/{user_id}", {"tpm_limit": 0}, content_type="application/json")
    assert (changed.json()["rpm_limit"], changed.json()["tpm_limit"]) == (30, 0)
    cleared = api.patch(f"/api/users/{user_id}", {"rpm_limit": None}, content_type="application/json")
    assert (cleared.json()["rpm_limit"], cleared.json()["tpm_limit"]) == (None, 0)
    assert User.objects.values_list("rpm_limit", "tpm_limit").get(pk=user_id) == (None, 0)
    refused = api.patch(f"/api/users/{user_id}", {"rpm_limit": -1}, content_type="application/json")
    assert refused.status_code == 422 and "rpm_limit" in refused.json()["detail"]


@pytest.mark.parametrize("value", [-1, 2**31, "many"])
def test_an_invalid_limit_is_422(access_token, value):
    api = Client(headers={"Authorization": f"Bearer {access_token}"})
    response = api.post("/api/tokens", {"rpm_limit": value}, content_type="application/json")
    assert response.status_code == 422 and "rpm_limit" in response.json()["detail"]


@override_settings(RATE_LIMITS={"default": {"key_rpm": 60}})
@pytest.mark.parametrize(("value", "status"), [(30, 201), (60, 201), (61, 403), (0, 403)])
def test_users_may_only_lower_their_keys_limit_below_the_group(alice, value, status):
    api = Client(headers={"Authorization": f"Bearer {AccessToken.issue(alice)[1]}"})
    response = api.post("/api/tokens", {"rpm_limit": value}, content_type="application/json")
    assert response.status_code == status
    assert ApiKey.objects.filter(user=alice).count() == (1 if status == 201 else 0)


@override_settings(RATE_LIMITS={})
def test_users_may_set_any_limit_when_their_group_has_none(alice):
    api = Client(headers={"Authorization": f"Bearer {AccessToken.issue(alice)[1]}"})
    token, _ = make_key(alice)
    response = api.patch(f"/api/tokens/{token.pk}", {"tpm_limit": 100}, content_type="application/json")
    assert response.status_code == 200 and response.json()["tpm_limit"] == 100


def test_staff_edit_key_and_user_limits_in_admin(root, alice):
    admin = Client()
    admin.force_login(root)
    token, _ = make_key(alice)
    key_form = {"user": alice.pk, "name": "app", "status": "enabled", "remain_quota": 1, "group": ""}
    response = admin.post(f"/admin/billing/apikey/{token.pk}/change/", {**key_form, "rpm_limit": 7, "tpm_limit": ""})
    assert response.status_code == 302
    token.refresh_from_db()
    assert (token.rpm_limit, token.tpm_limit) == (7, None)
    user_form = {"username": "alice", "group": "default", "is_active": "on", "rpm_limit": 0, "tpm_limit": 900}
    assert admin.post(f"/admin/billing/user/{alice.pk}/change/", user_form).status_code == 302
    alice.refresh_from_db()
    assert (alice.rpm_limit, alice.tpm_limit) == (0, 900)
