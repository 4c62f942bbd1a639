"""Per-key and per-user request and token limits per minute: 429 with Retry-After, nothing charged."""

import asyncio
import time

import httpx
import orjson
import pytest
from django.conf import settings
from django.test import AsyncClient, override_settings

from billing.models import Log
from tests.conftest import make_key
from tests.live_server import LiveGateway

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def post(key: str):
    return AsyncClient().post(
        "/v1/chat/completions",
        orjson.dumps(HELLO),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def wait_for_a_fresh_minute(needed_seconds: int = 20) -> None:
    """Counters are per wall-clock minute: start where the window has room for the whole test."""
    left = 60 - time.time() % 60
    if left < needed_seconds:
        time.sleep(left + 0.1)


@override_settings(RATE_LIMITS={"default": {"key_rpm": 2}})
async def test_the_third_request_of_a_minute_gets_429_with_retry_after(alice_key, openai_channel):
    await asyncio.to_thread(wait_for_a_fresh_minute)
    assert [(await post(alice_key)).status_code for _ in range(2)] == [200, 200]
    limited = await post(alice_key)
    assert limited.status_code == 429
    assert 0 < int(limited["Retry-After"]) <= 60
    assert orjson.loads(limited.content)["error"]["code"] == "rate_limit_exceeded"
    assert await Log.objects.filter(type="consume").acount() == 2


@override_settings(RATE_LIMITS={"default": {"key_tpm": 10}})
async def test_a_key_over_its_tokens_per_minute_is_refused(alice_key, openai_channel):
    await asyncio.to_thread(wait_for_a_fresh_minute)
    assert (await post(alice_key)).status_code == 200  # 12 + 6 tokens: over the limit from now on
    assert (await post(alice_key)).status_code == 429


@override_settings(RATE_LIMITS={"vip": {"user_rpm": 1}})
async def test_user_limits_span_keys_and_follow_the_group(alice, openai_channel):
    openai_channel.groups = ["default", "vip"]
    await openai_channel.asave()
    await asyncio.to_thread(wait_for_a_fresh_minute)
    _, first = await asyncio.to_thread(make_key, alice, group="vip")
    _, second = await asyncio.to_thread(make_key, alice, group="vip")
    _, other_group = await asyncio.to_thread(make_key, alice)
    assert (await post(first)).status_code == 200
    assert (await post(second)).status_code == 429
    assert (await post(other_group)).status_code == 200  # "default" has no limit here


@pytest.mark.backend
def test_a_limit_holds_across_two_processes_through_redis(alice, openai_channel):
    if not settings.REDIS_CONN_STRING:
        pytest.skip("a limit is shared across processes only through Redis (this leg has none)")
    _, key = make_key(alice)
    limits = '{"default": {"key_rpm": 10}}'
    first, second = LiveGateway({"RATE_LIMITS": limits}), LiveGateway({"RATE_LIMITS": limits})
    try:
        wait_for_a_fresh_minute(30)

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                calls = [
                    client.post(
                        f"{server.url}/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {key}"}
                    )
                    for server in (first, second)
                    for _ in range(15)
                ]
                return [response.status_code for response in await asyncio.gather(*calls)]

        statuses = asyncio.run(burst())
    finally:
        first.stop()
        second.stop()
    assert statuses.count(200) == 10 and statuses.count(429) == 20
