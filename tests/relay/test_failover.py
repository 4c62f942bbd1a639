"""A dead upstream fails over: a channel that cannot be reached (connection refused, a name that does not
resolve, a failed TLS handshake, a connect timeout) is retried on another channel, rests after
CHANNEL_FAILURE_THRESHOLD failures, and is reported as 502 `upstream_unreachable` without its host. An
upstream that was reached but did not answer in time stays a 504 that is not retried."""

import asyncio
import logging
from urllib.parse import urlsplit

import aiohttp
import httpx
import orjson
import pytest
from django.conf import settings
from django.test import override_settings

from billing.models import Log
from channels_app import healing
from channels_app.models import Channel
from gateway_project.db import run_db
from relay import upstream
from relay.channel_test import probe_channel
from tests.support.factories import make_channel
from tests.support.fakes.openai_upstream import Behaviour, FakeOpenAI
from tests.support.live_server import free_port
from tests.support.relay_client import post_chat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

BLACK_HOLE = "black-hole.test"
# kind of dead upstream -> what the client and the channel test are told
REASONS = {
    "refused": "connection refused",
    "unresolved": "name not resolved",
    "tls": "TLS handshake failed",
    "connect-timeout": "connect timed out",
}


def dead_url(kind: str, fake_openai: FakeOpenAI) -> str:
    return {
        "refused": f"http://127.0.0.1:{free_port()}",  # bound, then closed: nothing listens
        "unresolved": "http://gateway-test.invalid",  # RFC 2606: never resolves (here in about 10 ms)
        "tls": f"https://127.0.0.1:{fake_openai.port}",  # a plain-HTTP server answers the TLS handshake
        "connect-timeout": f"http://{BLACK_HOLE}",
    }[kind]


class TimesOut:
    async def __aenter__(self):
        raise aiohttp.ConnectionTimeoutError(f"Connection timeout to host http://{BLACK_HOLE}")


class BlackHoleSession:
    """aiohttp's session for httpx-aiohttp: connecting to BLACK_HOLE times out, as it does behind a firewall
    that drops packets (no address on this machine does that); every other request goes through."""

    def __init__(self) -> None:
        self.session = aiohttp.ClientSession()

    def __call__(self) -> "BlackHoleSession":  # httpx-aiohttp calls a callable `client` for its session
        return self

    def request(self, method: str, url: str, **options):
        return TimesOut() if urlsplit(url).hostname == BLACK_HOLE else self.session.request(method, url, **options)


@pytest.fixture
async def black_hole(monkeypatch):
    """The relay's shared client, over a BlackHoleSession."""
    session = BlackHoleSession()
    timeout = httpx.Timeout(settings.RELAY_TIMEOUT, connect=settings.RELAY_CONNECT_TIMEOUT)
    client = httpx.AsyncClient(transport=upstream.BoundedTransport(client=session), timeout=timeout)
    monkeypatch.setattr(upstream, "client", lambda: client)
    yield
    await session.session.close()


@pytest.fixture(params=list(REASONS))
def kind(request) -> str:
    return request.param


@pytest.fixture
def tier(kind: str, fake_openai: FakeOpenAI, black_hole, transactional_db) -> Channel:
    """A dead channel, weighted to be picked first, and two healthy ones in the same priority tier."""
    dead = make_channel(dead_url(kind, fake_openai), name="dead", weight=100)
    for name in ("healthy-1", "healthy-2"):
        make_channel(fake_openai.url, name=name)
    return dead


async def test_a_dead_channel_never_fails_a_request_while_another_can_answer_and_rests(tier, alice_key, caplog):
    caplog.set_level(logging.WARNING, logger="relay.service")
    statuses = [(await post_chat(alice_key)).status_code for _ in range(30)]
    assert statuses == [200] * 30
    assert healing.Rests.resting() == {tier.pk}
    failures = [record for record in caplog.records if f"channel {tier.pk} failed with 502" in record.getMessage()]
    assert len(failures) == settings.CHANNEL_FAILURE_THRESHOLD  # then it rests, and is skipped
    assert (await Channel.objects.aget(pk=tier.pk)).status == Channel.Status.ENABLED  # resting, not disabled


@pytest.fixture
def lone_dead_channel(kind: str, fake_openai: FakeOpenAI, black_hole, transactional_db) -> Channel:
    return make_channel(dead_url(kind, fake_openai), name="dead")


async def test_with_no_other_channel_the_client_gets_502_upstream_unreachable_without_the_host(
    kind, lone_dead_channel, alice_key
):
    response = await post_chat(alice_key)
    assert response.status_code == 502
    error = orjson.loads(response.content)["error"]
    assert error == {
        "message": f"upstream unreachable: {REASONS[kind]}",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_unreachable",
    }
    logged = await Log.objects.aget(request_id=response["X-Request-Id"], type=Log.Type.ERROR)
    assert logged.content.endswith(f"upstream unreachable: {REASONS[kind]}")
    host = urlsplit(lone_dead_channel.base_url).netloc
    assert host not in response.content.decode() and host not in logged.content


async def test_an_upstream_reached_that_sends_no_headers_in_time_is_a_504_not_retried(
    alice_key, fake_openai, transactional_db
):
    await run_db(make_channel, fake_openai.url, name="slow", priority=1)
    await run_db(make_channel, fake_openai.url, name="next tier")
    fake_openai.script.append(Behaviour(delay=1.0))
    with override_settings(RELAY_TIMEOUT=0.3):  # read when this test's loop makes its shared client
        response = await post_chat(alice_key)
    assert response.status_code == 504
    error = orjson.loads(response.content)["error"]
    assert (error["type"], error["code"]) == ("upstream_timeout", "upstream_timeout")
    assert len(fake_openai.requests) == 1  # it may still be working, and charging: not sent elsewhere


async def test_a_connection_closed_before_the_answer_is_a_502_tried_on_another_channel(
    alice_key, fake_openai, transactional_db
):
    """An upstream that closed the connection (a stale pooled one, a crash) is no timeout."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    closing = await run_db(make_channel, f"http://127.0.0.1:{port}", name="hangs up", priority=1)
    await run_db(make_channel, fake_openai.url, name="next tier")
    async with server:
        response = await post_chat(alice_key)
    assert response.status_code == 200
    assert healing.Rests.streaks[closing.pk].failures == 1


async def test_the_transport_names_a_connect_timeout_without_the_host(black_hole):
    with pytest.raises(upstream.Unreachable) as raised:
        await upstream.client().post(f"http://{BLACK_HOLE}/v1/chat/completions", content=b"{}")
    assert str(raised.value) == "upstream unreachable: connect timed out"
    failure = upstream.failure_of(raised.value)
    assert (failure.status, failure.code) == (502, "upstream_unreachable")


@pytest.mark.parametrize("kind", ["refused", "unresolved", "tls"])
def test_the_channel_test_says_what_happened(kind, fake_openai, transactional_db):
    channel = make_channel(dead_url(kind, fake_openai))
    result = probe_channel(channel)
    assert not result.success and not result.permanent
    assert result.message == f"gpt-4o: upstream unreachable: {REASONS[kind]}"


async def test_an_upstream_that_keeps_timing_out_rests_without_being_retried(alice_key, fake_openai, transactional_db):
    slow = await run_db(make_channel, fake_openai.url, name="slow")
    for _ in range(settings.CHANNEL_FAILURE_THRESHOLD):
        fake_openai.script.append(Behaviour(delay=1.0))
    with override_settings(RELAY_TIMEOUT=0.3):
        for _ in range(settings.CHANNEL_FAILURE_THRESHOLD):
            assert (await post_chat(alice_key)).status_code == 504
    assert slow.pk in healing.Rests.resting()
    assert len(fake_openai.requests) == settings.CHANNEL_FAILURE_THRESHOLD
