"""Channel affinity: what a conversation remembers, for whom, for how long, how much of it, and that the memory
only ever prefers a channel routing would have drawn anyway."""

import asyncio
import json
from dataclasses import replace

import pytest
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.test import Client

from billing import pricing
from billing.models import PriceTable
from channels_app import affinity, healing, routing, selection
from channels_app.routing import ChannelInfo

SESSION = affinity.session_key(1, "default", "gpt-4o", "conversation-1")


def info(channel_id: int, priority: int = 0, weight: int = 1) -> ChannelInfo:
    return ChannelInfo(channel_id, f"c{channel_id}", "openai", "k", "", priority, weight)


THREE = [info(1), info(2), info(3)]


@pytest.mark.parametrize(
    "other",
    [
        (2, "default", "gpt-4o", "conversation-1"),  # another user with the same session id
        (1, "vip", "gpt-4o", "conversation-1"),
        (1, "default", "gpt-4.1", "conversation-1"),
        (1, "default", "gpt-4o", "conversation-2"),
    ],
)
def test_a_session_is_scoped_to_its_user_group_model_and_identity(other):
    assert affinity.session_key(*other) != SESSION
    assert affinity.session_key(1, "default", "gpt-4o", "conversation-1") == SESSION


def test_the_key_never_shows_the_identity_and_has_a_fixed_size():
    long = affinity.session_key(1, "default", "gpt-4o", "secret-session-" * 1000)
    assert "secret" not in long and len(long) == len(SESSION) == len("affinity:") + 64


def counted(result: str) -> float:
    return affinity.SESSIONS.labels(result)._value.get()


async def test_a_session_remembers_the_channel_that_served_it_last():
    before = {result: counted(result) for result in ("new", "hit", "moved")}
    assert await affinity.recall(SESSION) is None
    await affinity.remember(SESSION, (7, None), None)
    assert await affinity.recall(SESSION) == (7, None)
    await affinity.remember(SESSION, (7, 2), (7, None))  # the same channel, another of its keys: still a hit
    await affinity.remember(SESSION, (9, None), (7, 2))  # failover moved it
    assert await affinity.recall(SESSION) == (9, None)
    assert {result: counted(result) - before[result] for result in before} == {"new": 1, "hit": 1, "moved": 1}


@pytest.mark.cache
async def test_a_session_is_forgotten_after_the_ttl_since_its_last_use(settings, transactional_db):
    """With Redis the cache calls run on the database's threads (gateway_project.db.run_db), which tidy their
    connections: the test needs database access for that."""
    settings.AFFINITY_TTL = 1
    await affinity.remember(SESSION, (7, None), None)
    await asyncio.sleep(0.6)
    await affinity.remember(SESSION, (7, None), (7, None))  # used again: another full TTL
    await asyncio.sleep(0.6)
    assert await affinity.recall(SESSION) == (7, None)
    await asyncio.sleep(1.1)
    assert await affinity.recall(SESSION) is None


def test_the_memory_is_bounded_and_keeps_the_recent_sessions(settings):
    settings.CACHES = {
        **settings.CACHES,
        "affinity": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "OPTIONS": {"MAX_ENTRIES": 50}},
    }
    sessions = [affinity.session_key(1, "default", "gpt-4o", f"flood-{n}") for n in range(500)]
    for number, session in enumerate(sessions):
        asyncio.run(affinity.remember(session, (number, None), None))
    assert len(caches["affinity"]._cache) <= 50
    assert asyncio.run(affinity.recall(sessions[-1])) == (len(sessions) - 1, None)


def test_the_preferred_channel_is_chosen_every_time_in_its_tier():
    assert {routing.choose(THREE, set(), preferred=2).id for _ in range(50)} == {2}


def test_a_preferred_channel_below_the_top_tier_is_passed_over():
    channels = [info(1, priority=10), info(2, priority=0)]
    assert {routing.choose(channels, set(), preferred=2).id for _ in range(50)} == {1}


def test_a_preferred_channel_of_weight_zero_waits_like_any_other():
    tier = [info(1, weight=0), info(2, weight=5)]
    assert {routing.choose(tier, set(), preferred=1).id for _ in range(50)} == {2}


def test_a_preferred_channel_that_is_gone_from_the_candidates_is_passed_over():
    """Disabled, or out of the key's group: routing.Index.candidates no longer lists it."""
    assert routing.choose(THREE, set(), preferred=4).id in {1, 2, 3}


def test_a_resting_preferred_channel_is_passed_over(settings):
    settings.CHANNEL_FAILURE_THRESHOLD = 1
    healing.Rests.failed(2)
    chosen = [next(selection.channels_to_try(THREE, 1, preferred=(2, None))).id for _ in range(50)]
    assert 2 not in chosen


def test_a_failed_preferred_channel_is_not_tried_again():
    tried: list[int] = []
    tries = selection.channels_to_try(THREE, 3, tried, preferred=(2, None))
    assert next(tries).id == 2
    assert next(tries).id in {1, 3}


def test_a_session_keeps_its_key_of_a_channel_of_several_while_it_lives():
    """The upstream's prompt cache is per account: a conversation stays on its key, whatever the key_mode."""
    keys = ((0, "sk-a"), (1, "sk-b"), (2, "sk-c"))
    several = [replace(channel, keys=keys, key_mode="polling") for channel in THREE]
    assert {next(selection.channels_to_try(several, 1, preferred=(2, 1))).key for _ in range(20)} == {"sk-b"}
    dead: selection.DeadKeys = {(2, 1)}
    assert next(selection.channels_to_try(several, 1, dead_keys=dead, preferred=(2, 1))).key in {"sk-a", "sk-c"}


def test_each_group_may_name_its_own_sources_or_none(settings):
    settings.AFFINITY_SOURCES = ("X-Session-Id", "prompt_cache_key")
    prices = pricing.Prices(**{**pricing.defaults(), "group_affinity": {"free": [], "claude": ["metadata.user_id"]}})
    assert prices.affinity_sources("default") == ("X-Session-Id", "prompt_cache_key")
    assert prices.affinity_sources("free") == []
    assert prices.affinity_sources("claude") == ["metadata.user_id"]


@pytest.mark.django_db
@pytest.mark.parametrize("value", [{"vip": ["cookie"]}, {"vip": "prompt_cache_key"}, ["prompt_cache_key"]])
def test_admin_refuses_an_unknown_source(value):
    table = PriceTable(pk=1, **{**pricing.defaults(), "group_affinity": value})
    with pytest.raises(ValidationError, match="prompt_cache_key"):
        table.full_clean()


@pytest.mark.django_db
@pytest.mark.parametrize("value", [{"vip": ["cookie"]}, {"vip": "prompt_cache_key"}, {"vip": [1]}])
def test_the_management_api_refuses_an_unknown_source(access_token, value):
    answer = patch_prices(access_token, {"group_affinity": value})
    assert answer.status_code == 422 and "group_affinity" in answer.text


@pytest.mark.django_db
def test_the_management_api_sets_a_groups_sources(access_token):
    answer = patch_prices(access_token, {"group_affinity": {"free": [], "vip": ["metadata.user_id"]}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["group_affinity"] == {"free": [], "vip": ["metadata.user_id"]}
    assert pricing.current().affinity_sources("vip") == ["metadata.user_id"]


def patch_prices(token: str, body: dict):
    headers = {"Authorization": f"Bearer {token}"}
    return Client().patch("/api/pricing", json.dumps(body), content_type="application/json", headers=headers)
