"""Sticky sessions end to end: the real server, the official SDKs, three equal channels (same priority, same
weight) behind fake upstreams. A conversation's 20 requests land on one channel, for each source of a
conversation identity; without one they spread; when its channel is disabled or fails, the rest of the
conversation moves to one other channel and stays there. With REDIS_CONN_STRING set (the `cache` leg), the
memory is Redis's, and two server processes share it."""

from collections import Counter

import anthropic
import httpx
import openai
import pytest
from django.conf import settings

from billing.models import Log
from tests.support.factories import make_channel, make_key
from tests.support.fakes import anthropic_upstream as claude
from tests.support.fakes.openai_upstream import Behaviour, start
from tests.support.live_server import LiveGateway, consume_logs

# Not database-sensitive (the storage is tested on every database in tests/channels_app); the tests that
# depend on the cache run on the Redis legs too.
pytestmark = pytest.mark.django_db(transaction=True)

GPT, CLAUDE = "gpt-4o", "claude-sonnet-4-5"
SESSION = 20


@pytest.fixture(scope="module")
def fake_claude() -> claude.FakeAnthropic:
    fake = claude.FakeAnthropic()
    start(fake)
    return fake


@pytest.fixture
def world(alice, access_token, fake_openai, fake_claude):
    fake_claude.script.clear()
    for number in range(3):
        make_channel(fake_openai.url, models=[GPT], name=f"gpt-{number}")
        make_channel(fake_claude.url, models=[CLAUDE], key=claude.API_KEY, type="anthropic", name=f"claude-{number}")
    key = make_key(alice)[1]
    server = LiveGateway()
    yield server, key
    server.stop()


def gpt(server: LiveGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def channels_used(count: int) -> list[int]:
    """The channel of each of the last `count` answered requests, in order."""
    logs = consume_logs(count)
    return [log.channel_id for log in logs[-count:]]


def report(source: str, channels: list[int]) -> float:
    """The share of the session on its most used channel, printed as the issue asks."""
    (_, most), *_ = Counter(channels).most_common(1)
    rate = most / len(channels)
    print(f"affinity by {source}: {most}/{len(channels)} requests on one channel, hit rate {rate:.0%}")
    return rate


def session_header(server: LiveGateway, key: str, session: str) -> None:
    stream = gpt(server, key).chat.completions.create(
        model=GPT, messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers={"X-Session-Id": session}
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def prompt_cache_key(server: LiveGateway, key: str, session: str) -> None:
    answer = gpt(server, key).chat.completions.create(
        model=GPT, messages=[{"role": "user", "content": "hi"}], prompt_cache_key=session
    )
    assert answer.choices[0].message.content


def claude_code(server: LiveGateway, key: str, session: str) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)
    message = client.messages.create(
        model=CLAUDE,
        max_tokens=256,
        metadata={"user_id": f"user_0123_account_abc_session_{session}"},
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.content[0].text == claude.REPLY


SOURCES = {"X-Session-Id": session_header, "prompt_cache_key": prompt_cache_key, "metadata.user_id": claude_code}


@pytest.mark.cache
@pytest.mark.parametrize("source", SOURCES)
def test_a_session_of_20_requests_lands_on_one_channel_of_three(world, source):
    server, key = world
    for _ in range(SESSION):
        SOURCES[source](server, key, "conversation-1")
    assert report(source, channels_used(SESSION)) == 1.0


def test_requests_without_a_conversation_spread_over_the_channels(world):
    server, key = world
    client = gpt(server, key)
    for _ in range(SESSION):
        client.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "hi"}])
    channels = channels_used(SESSION)
    report("nothing", channels)
    assert len(set(channels)) > 1  # all 20 on one of three by chance: 3 x (1/3)^20


def test_two_conversations_keep_their_own_channels(world):
    server, key = world
    for turn in range(SESSION):
        prompt_cache_key(server, key, f"conversation-{turn % 2}")
    channels = channels_used(SESSION)
    assert len(set(channels[0::2])) == 1 and len(set(channels[1::2])) == 1


def test_a_session_whose_channel_is_disabled_moves_to_one_other_and_stays(world, access_token):
    server, key = world
    for _ in range(SESSION // 2):
        prompt_cache_key(server, key, "conversation-1")
    (sticky,) = set(channels_used(SESSION // 2))
    disabled = httpx.patch(
        f"{server.url}/api/channels/{sticky}",
        json={"status": "disabled"},
        headers={"Authorization": f"Bearer {access_token}"},
    )
    assert disabled.status_code == 200, disabled.text
    for _ in range(SESSION // 2):
        prompt_cache_key(server, key, "conversation-1")
    (moved,) = set(channels_used(SESSION)[SESSION // 2 :])
    assert moved != sticky


def test_a_session_whose_channel_fails_is_retried_elsewhere_and_stays_there(world, fake_openai):
    server, key = world
    prompt_cache_key(server, key, "conversation-1")
    (sticky,) = channels_used(1)
    fake_openai.script.append(Behaviour(status=500, body={"error": {"message": "boom", "type": "server_error"}}))
    for _ in range(SESSION - 1):
        prompt_cache_key(server, key, "conversation-1")
    after = channels_used(SESSION)[1:]
    assert len(set(after)) == 1 and after[0] != sticky
    assert Log.objects.filter(type="error").count() == 0  # the retry answered: the client saw no failure


@pytest.mark.cache
@pytest.mark.skipif(not settings.REDIS_CONN_STRING, reason="the memory is per process without Redis")
def test_two_servers_share_the_sessions_through_redis(world):
    server, key = world
    other = LiveGateway()
    try:
        for turn in range(SESSION):
            prompt_cache_key(server if turn % 2 else other, key, "conversation-1")
    finally:
        other.stop()
    assert report("prompt_cache_key over two servers", channels_used(SESSION)) == 1.0
