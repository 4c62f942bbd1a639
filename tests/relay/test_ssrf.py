"""Image URLs the gateway fetches itself (to count image tokens) must not reach its own network (SSRF).

A local server on 127.0.0.2 plays a public image host: the `public_fake_host` fixture makes the policy
count that one address as public and resolves the name `images.test` to it. Everything else on
127.0.0.0/8 stays loopback, so a redirect to 127.0.0.1 is a redirect to a private address.
"""

import io
import ipaddress

import orjson
import pytest
from aiohttp import web
from PIL import Image

from billing.models import Log
from relay import safe_fetch, upstream
from relay.errors import RelayError
from relay.media import fetch
from relay.tokenizer import Tokens, count_messages
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.relay_client import post_chat

PUBLIC_FAKE = ipaddress.ip_address("127.0.0.2")


def png(width: int = 1024, height: int = 1024) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


class ImageHost:
    """Serves /cat.png, redirects /to?location=..., and records each request's path and Host header."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str]] = []
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append((request.path, request.headers.get("Host", "")))
        if request.path == "/cat.png":
            return web.Response(body=png(), content_type="image/png")
        if request.path == "/to":
            raise web.HTTPFound(request.query["location"])
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        return web.Response(status=404)

    async def start(self, host: str) -> "ImageHost":
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        # The test's event loop ends with the test: close the shared client's connections to this server first.
        await upstream.client().aclose()
        await self.runner.cleanup()


@pytest.fixture
async def public_host(monkeypatch):
    """An image host at 127.0.0.2 that the policy treats as public, reachable as `images.test`."""
    real_is_public, real_resolve = safe_fetch.is_public, safe_fetch.resolve

    async def resolve(host: str, port: int) -> list:
        return [PUBLIC_FAKE] if host == "images.test" else await real_resolve(host, port)

    monkeypatch.setattr(safe_fetch, "is_public", lambda address: address == PUBLIC_FAKE or real_is_public(address))
    monkeypatch.setattr(safe_fetch, "resolve", resolve)
    server = await ImageHost().start("127.0.0.2")
    yield server
    await server.stop()


@pytest.fixture
async def loopback_host():
    """An image host on 127.0.0.1: private for the policy; it must never be reached unless allowed."""
    server = await ImageHost().start("127.0.0.1")
    yield server
    await server.stop()


async def refusal(url: str) -> str:
    with pytest.raises(RelayError) as refused:
        await fetch(url)
    assert refused.value.status == 400 and refused.value.code == "invalid_image"
    return refused.value.message


# The address policy.


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "0.0.0.0",
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fd00::1",  # unique-local
        "fe80::1",
        "fec0::1",  # site-local
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2001:db8::1",  # documentation
    ],
)
def test_it_refuses_non_public_addresses(address):
    assert not safe_fetch.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_it_allows_public_addresses_including_ipv4_carried_in_ipv6(address):
    assert safe_fetch.is_public(ipaddress.ip_address(address))


# URLs, before any connection.


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/cat.png",  # decimal 127.0.0.1
        "http://0x7f000001/cat.png",  # hex
        "http://017700000001/cat.png",  # octal
        "http://127.1/cat.png",
        "http://0/cat.png",
        "http://localhost/cat.png",
        "http://[::1]:8080/cat.png",
        "http://[::ffff:127.0.0.1]/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/cat.png",
    ],
)
async def test_it_refuses_urls_whose_host_is_a_private_address_in_any_notation(url):
    assert "private" in await refusal(url)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/cat.png", "file:///etc/passwd", "gopher://example.com/", "http:///cat.png"]
)
async def test_it_refuses_other_schemes_and_urls_without_host(url):
    await refusal(url)


async def test_it_refuses_urls_with_credentials():
    assert "user name or password" in await refusal("http://user:secret@images.test/cat.png")


async def test_it_refuses_a_name_when_any_of_its_addresses_is_private(monkeypatch):
    async def resolve(host: str, port: int) -> list:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.7")]

    monkeypatch.setattr(safe_fetch, "resolve", resolve)
    assert "private" in await refusal("https://mixed.test/cat.png")


async def test_a_name_that_does_not_resolve_is_a_fetch_failure():
    assert "could not be fetched" in await refusal("http://nothing.invalid/cat.png")


# Fetching.


async def test_it_connects_to_the_checked_address_and_keeps_the_host_name(public_host):
    # `images.test` is not in any DNS: the request can only arrive through the address the policy checked.
    assert await fetch(f"http://images.test:{public_host.port}/cat.png") == png()
    assert public_host.hits == [("/cat.png", f"images.test:{public_host.port}")]


async def test_it_follows_redirects_between_public_hosts(public_host):
    hop = f"http://images.test:{public_host.port}"
    assert await fetch(f"{hop}/to?location={hop}/to?location=/cat.png") == png()
    assert [path for path, _ in public_host.hits] == ["/to", "/to", "/cat.png"]


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://0x7f000001/"])
async def test_a_redirect_to_a_private_address_is_refused(public_host, target):
    assert "private" in await refusal(f"http://images.test:{public_host.port}/to?location={target}")


async def test_a_redirect_to_a_loopback_server_never_reaches_it(public_host, loopback_host):
    target = f"http://127.0.0.1:{loopback_host.port}/cat.png"
    assert "private" in await refusal(f"http://images.test:{public_host.port}/to?location={target}")
    assert loopback_host.hits == []


async def test_a_redirect_to_another_scheme_is_refused(public_host):
    await refusal(f"http://images.test:{public_host.port}/to?location=file:///etc/passwd")


async def test_endless_redirects_are_refused_after_a_few_hops(public_host):
    assert "redirects more than" in await refusal(f"http://images.test:{public_host.port}/loop")
    assert len(public_host.hits) == safe_fetch.MAX_REDIRECTS + 1


async def test_private_hosts_are_fetched_when_the_operator_allows_them(loopback_host, settings):
    settings.IMAGE_FETCH_ALLOW_PRIVATE = True
    assert await fetch(f"http://127.0.0.1:{loopback_host.port}/cat.png") == png()


# Through the relay.


def vision_chat(url: str) -> dict:
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}


@pytest.mark.django_db(transaction=True)
async def test_the_relay_answers_400_for_a_private_image_url_and_calls_no_upstream(
    alice_key, openai_channel, fake_openai, loopback_host
):
    response = await post_chat(alice_key, vision_chat(f"http://127.0.0.1:{loopback_host.port}/cat.png"))
    assert response.status_code == 400
    error = orjson.loads(response.content)["error"]
    assert error["code"] == "invalid_image" and error["type"] == "invalid_request_error"
    assert "private" in error["message"]
    assert not fake_openai.requests and not loopback_host.hits


@pytest.mark.django_db(transaction=True)
async def test_the_relay_counts_a_private_image_when_the_operator_allows_it(
    alice_key, openai_channel, fake_openai, loopback_host, settings
):
    settings.IMAGE_FETCH_ALLOW_PRIVATE = True
    fake_openai.script.append(Behaviour(usage=False))
    body = vision_chat(f"http://127.0.0.1:{loopback_host.port}/cat.png")
    response = await post_chat(alice_key, body)
    assert response.status_code == 200
    log = await Log.objects.aget(request_id=response["X-Request-Id"])
    assert log.prompt_tokens == count_messages(body["messages"], Tokens("gpt-4o")) + 765
