"""Channel choice, retries, status-code overrides, pinning, auto-disable and rests."""

import asyncio
import random

import orjson
import pytest
from django.test import override_settings

from billing.models import Log, User
from channels_app import routing
from channels_app.models import Channel
from channels_app.routing import ChannelInfo
from tests.support.factories import ALICE_QUOTA, make_channel, make_key
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.relay_client import post_chat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend, pytest.mark.cache]

BOOM = {"error": {"message": "boom", "type": "server_error"}}


def info(channel_id: int, priority: int = 0, weight: int = 1) -> ChannelInfo:
    return ChannelInfo(channel_id, f"c{channel_id}", "openai", "k", "", priority, weight)


def test_weights_split_picks_in_proportion():
    tier = [info(1, weight=1), info(2, weight=3)]
    rng = random.Random(20261128)
    picks = [routing.choose(tier, set(), rng).id for _ in range(2000)]
    share = picks.count(2) / len(picks)
    assert 0.70 <= share <= 0.80


def test_a_lower_tier_is_never_used_while_a_higher_one_has_a_channel():
    channels = [info(1, priority=10), info(2, priority=10), info(3, priority=0, weight=100)]
    rng = random.Random(7)
    assert {routing.choose(channels, set(), rng).id for _ in range(500)} == {1, 2}
    assert routing.choose(channels, {1, 2}, rng).id == 3
    assert routing.choose(channels, {1, 2, 3}, rng) is None


def test_zero_weight_serves_only_when_nothing_else_in_the_tier_is_left():
    tier = [info(1, weight=0), info(2, weight=5)]
    rng = random.Random(3)
    assert {routing.choose(tier, set(), rng).id for _ in range(200)} == {2}
    assert routing.choose(tier, {2}, rng).id == 1


def channel(fake, name: str, **fields) -> Channel:
    return make_channel(fake.url, name=name, key=f"sk-{name}", **fields)


def keys_hit(fake) -> list[str]:
    return [r.headers["Authorization"].removeprefix("Bearer sk-") for r in fake.requests]


async def test_retries_stay_in_the_tier_then_fall_to_the_next(alice_key, fake_openai):
    for name, priority in (("a", 10), ("b", 10), ("c", 0)):
        await asyncio.to_thread(channel, fake_openai, name, priority=priority)
    fake_openai.script += [Behaviour(status=500, body=BOOM), Behaviour(status=502, body=BOOM)]
    response = await post_chat(alice_key)
    assert response.status_code == 200
    assert sorted(keys_hit(fake_openai)[:2]) == ["a", "b"] and keys_hit(fake_openai)[2] == "c"
    assert await Log.objects.filter(type="consume", channel_id__isnull=False).acount() == 1


@pytest.mark.parametrize("status", [400, 504, 524])
async def test_these_statuses_are_never_retried(alice_key, fake_openai, status):
    for name in ("a", "b"):
        await asyncio.to_thread(channel, fake_openai, name)
    fake_openai.script.append(Behaviour(status=status, body={"error": {"message": "no", "type": "x"}}))
    response = await post_chat(alice_key)
    assert response.status_code == status
    assert len(fake_openai.requests) == 1
    assert (await User.objects.aget(username="alice")).quota == ALICE_QUOTA


async def test_status_code_mapping_makes_a_400_retryable(alice_key, fake_openai):
    await asyncio.to_thread(channel, fake_openai, "a", status_code_mapping={"400": "500"}, priority=1)
    await asyncio.to_thread(channel, fake_openai, "b")
    fake_openai.script.append(Behaviour(status=400, body={"error": {"message": "bad", "type": "x"}}))
    response = await post_chat(alice_key)
    assert response.status_code == 200
    assert keys_hit(fake_openai) == ["a", "b"]


async def test_the_client_sees_the_last_error_with_the_mapped_status_and_pays_nothing(alice_key, fake_openai):
    await asyncio.to_thread(channel, fake_openai, "a", status_code_mapping={"429": "503"})
    fake_openai.script.append(Behaviour(status=429, body={"error": {"message": "slow down", "type": "rate"}}))
    response = await post_chat(alice_key)
    assert response.status_code == 503
    assert orjson.loads(response.content)["error"]["message"] == "slow down"
    assert (await User.objects.aget(username="alice")).quota == ALICE_QUOTA
    assert await Log.objects.filter(type="error").acount() == 1


async def test_an_admin_key_may_pin_a_channel(root, fake_openai):
    await asyncio.to_thread(channel, fake_openai, "a", priority=10)
    pinned = await asyncio.to_thread(channel, fake_openai, "b")
    _, key = await asyncio.to_thread(make_key, root)
    fake_openai.script.append(Behaviour(status=500, body=BOOM))
    response = await post_chat(f"{key}-{pinned.pk}")
    assert response.status_code == 500  # pinned: no retry elsewhere
    assert keys_hit(fake_openai) == ["b"]
    assert (await post_chat(f"{key}-{pinned.pk}")).status_code == 200


async def test_a_normal_user_may_not_pin(alice_key, fake_openai):
    pinned = await asyncio.to_thread(channel, fake_openai, "a")
    response = await post_chat(f"{alice_key}-{pinned.pk}")
    assert response.status_code == 403
    assert orjson.loads(response.content)["error"]["code"] == "channel_pin_forbidden"


async def test_a_revoked_upstream_key_disables_the_channel_and_the_call_moves_on(alice_key, fake_openai):
    bad = await asyncio.to_thread(channel, fake_openai, "a", priority=10)
    await asyncio.to_thread(channel, fake_openai, "b")
    fake_openai.script.append(
        Behaviour(status=401, body={"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
    )
    assert (await post_chat(alice_key)).status_code == 200
    await bad.arefresh_from_db()
    assert bad.status == "auto_disabled" and "Incorrect API key" in bad.status_reason
    assert await Log.objects.filter(type="manage", channel_id=bad.pk).aexists()
    assert (await post_chat(alice_key)).status_code == 200
    assert keys_hit(fake_openai) == ["a", "b", "b"]  # out of rotation at once on this instance


@pytest.mark.parametrize(
    "error",
    [
        {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota"}},
        {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
    ],
    ids=["openai-quota", "anthropic-auth"],  # Gemini's dead key: tests/relay/test_adaptor_gemini.py
)
async def test_provider_flavours_of_dead_credentials_disable(alice_key, fake_openai, error):
    bad = await asyncio.to_thread(channel, fake_openai, "a")
    fake_openai.script.append(Behaviour(status=403 if "type" not in error else 401, body=error))
    await post_chat(alice_key)
    await bad.arefresh_from_db()
    assert bad.status == "auto_disabled"


async def test_auto_ban_off_is_never_disabled(alice_key, fake_openai):
    kept = await asyncio.to_thread(channel, fake_openai, "a", auto_ban=False)
    fake_openai.script.append(Behaviour(status=401, body={"error": {"message": "bad key", "code": "invalid_api_key"}}))
    assert (await post_chat(alice_key)).status_code == 401
    await kept.arefresh_from_db()
    assert kept.status == "enabled"


@override_settings(CHANNEL_FAILURE_THRESHOLD=2, CHANNEL_COOLDOWN_SECONDS=60)
async def test_transient_failures_rest_a_channel_without_disabling_it(alice_key, fake_openai):
    flaky = await asyncio.to_thread(channel, fake_openai, "a", priority=10)
    await asyncio.to_thread(channel, fake_openai, "b")
    for _ in range(2):
        fake_openai.script.append(Behaviour(status=500, body=BOOM))
        assert (await post_chat(alice_key)).status_code == 200
    assert keys_hit(fake_openai) == ["a", "b", "a", "b"]
    await post_chat(alice_key)
    assert keys_hit(fake_openai)[-1] == "b"  # "a" rests
    await flaky.arefresh_from_db()
    assert flaky.status == "enabled"
