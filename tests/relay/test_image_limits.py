"""Sizing a request's images costs the gateway work, so it is bounded and comes after a cheap quota check:
a key that cannot pay for the text is refused before any image is read; at most IMAGE_MAX_COUNT images and
IMAGE_MAX_PIXELS pixels in all; URL fetches IMAGE_FETCH_CONCURRENCY at a time within IMAGE_FETCH_TIMEOUT
for all of them; data URLs decoded off the event loop."""

import asyncio
import base64
import io
import threading

import orjson
import pytest
from aiohttp import web
from PIL import Image

from billing.models import Log
from relay import upstream
from relay.media import HEADER_CHARS
from relay.tokenizer import Tokens, count_messages
from tests.support.factories import make_key
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.relay_client import post_chat

pytestmark = pytest.mark.django_db(transaction=True)


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(image: bytes, line_length: int = 0) -> str:
    text = base64.b64encode(image).decode()
    if line_length:  # MIME-style base64, as some encoders write it
        text = "\n".join(text[start : start + line_length] for start in range(0, len(text), line_length))
    return "data:image/png;base64," + text


def with_images(*urls: str) -> dict:
    parts = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, *parts]}]}


class SlowImageHost:
    """Serves a 16x16 PNG at any path after `delay` seconds; records how many requests it served at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.hits = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            return web.Response(body=png(16, 16), content_type="image/png")
        finally:
            self.in_flight -= 1

    async def start(self) -> "SlowImageHost":
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        await upstream.client().aclose()  # the shared client's connections belong to this test's event loop
        await self.runner.cleanup()


@pytest.fixture
async def image_host(settings):
    settings.IMAGE_FETCH_ALLOW_PRIVATE = True  # the host is on 127.0.0.1
    host = await SlowImageHost(delay=0.05).start()
    yield host
    await host.stop()


@pytest.fixture
def images_read(monkeypatch) -> list[int]:
    """The thread of every image header Pillow reads."""
    threads = []
    real_open = Image.open

    def spy(*args, **kwargs):
        threads.append(threading.get_ident())
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    return threads


@pytest.mark.backend
async def test_a_key_that_cannot_pay_for_the_text_is_refused_before_any_image_is_read(
    alice, openai_channel, image_host, images_read
):
    _, broke = await asyncio.to_thread(make_key, alice, remain_quota=0)
    response = await post_chat(broke, with_images(data_url(png(8, 8)), f"{image_host.url}/cat.png"))
    assert response.status_code == 403
    assert orjson.loads(response.content)["error"]["code"] == "insufficient_quota"
    assert (images_read, image_host.hits) == ([], 0)


@pytest.mark.backend
async def test_a_key_that_can_pay_for_the_text_but_not_the_images_is_refused_after_sizing_them(
    alice, openai_channel, fake_openai, images_read
):
    # 200 quota covers the text and the completion budget (gpt-4o: ratio 1.25), not 765 tokens of image on top.
    _, key = await asyncio.to_thread(make_key, alice, remain_quota=1000)
    body = {**with_images(data_url(png(1024, 1024))), "max_tokens": 10}
    response = await post_chat(key, body)
    assert response.status_code == 403 and len(images_read) == 1
    assert not fake_openai.requests


async def test_more_images_than_IMAGE_MAX_COUNT_are_refused_before_any_is_read(
    alice_key, openai_channel, images_read, settings
):
    settings.IMAGE_MAX_COUNT = 3
    response = await post_chat(alice_key, with_images(*[data_url(png(1, 1))] * 4))
    assert response.status_code == 400
    error = orjson.loads(response.content)["error"]
    assert (error["code"], error["type"]) == ("too_many_images", "invalid_request_error")
    assert "at most 3 images" in error["message"] and images_read == []


async def test_images_with_more_pixels_in_all_than_IMAGE_MAX_PIXELS_are_refused(
    alice_key, openai_channel, fake_openai, settings
):
    settings.IMAGE_MAX_PIXELS = 1000
    fine = await post_chat(alice_key, with_images(data_url(png(30, 30))))
    assert fine.status_code == 200, fine.content
    response = await post_chat(alice_key, with_images(data_url(png(30, 30)), data_url(png(30, 30))))
    assert response.status_code == 400
    assert orjson.loads(response.content)["error"]["code"] == "too_many_images"
    assert len(fake_openai.requests) == 1


async def test_image_urls_are_fetched_at_most_IMAGE_FETCH_CONCURRENCY_at_a_time(
    alice_key, openai_channel, fake_openai, image_host, settings
):
    settings.IMAGE_FETCH_CONCURRENCY = 2
    fake_openai.script.append(Behaviour(usage=False))
    body = with_images(*[f"{image_host.url}/{n}.png" for n in range(6)])
    response = await post_chat(alice_key, body)
    assert response.status_code == 200, response.content
    assert (image_host.hits, image_host.most_in_flight) == (6, 2)
    log = await Log.objects.aget(request_id=response["X-Request-Id"])
    assert log.prompt_tokens == text_tokens(body) + 6 * (85 + 170)  # every 16x16 image is one tile


async def test_every_image_fetch_of_a_request_shares_one_deadline(
    alice_key, openai_channel, fake_openai, image_host, settings
):
    settings.IMAGE_FETCH_CONCURRENCY = 1
    settings.IMAGE_FETCH_TIMEOUT = 0.3
    image_host.delay = 0.2  # each fetch alone is well within the deadline; the four together are not
    response = await post_chat(alice_key, with_images(*[f"{image_host.url}/{n}.png" for n in range(4)]))
    assert response.status_code == 400
    error = orjson.loads(response.content)["error"]
    assert error["code"] == "invalid_image" and "within 0.3 s" in error["message"]
    assert image_host.hits == 2 and not fake_openai.requests


async def test_data_urls_are_decoded_off_the_event_loop(alice_key, openai_channel, fake_openai, images_read):
    response = await post_chat(alice_key, with_images(data_url(png(64, 64))))
    assert response.status_code == 200, response.content
    assert images_read and threading.get_ident() not in images_read


@pytest.mark.parametrize("line_length", [0, 76], ids=["one-line", "mime-lines"])
async def test_a_data_url_longer_than_the_part_read_first_is_counted_by_the_images_real_size(
    alice_key, openai_channel, fake_openai, line_length
):
    buffer = io.BytesIO()
    Image.effect_noise((700, 500), 100).save(buffer, format="PNG", compress_level=0)
    assert len(buffer.getvalue()) * 4 / 3 > HEADER_CHARS
    fake_openai.script.append(Behaviour(usage=False))
    body = with_images(data_url(buffer.getvalue(), line_length))
    response = await post_chat(alice_key, body)
    assert response.status_code == 200, response.content
    log = await Log.objects.aget(request_id=response["X-Request-Id"])
    assert log.prompt_tokens == text_tokens(body) + 85 + 170 * 2  # 700x500: two 512px tiles


def text_tokens(body: dict) -> int:
    return count_messages(body["messages"], Tokens("gpt-4o"))
