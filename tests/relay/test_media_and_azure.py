"""Image input tokens (GET_MEDIA_TOKEN) and Azure OpenAI channels."""

import asyncio
import base64
import io

import orjson
import pytest
from django.test import override_settings
from PIL import Image

from billing.models import Log
from relay.media import tile_tokens
from relay.tokenizer import Tokens, count_messages
from tests.support.factories import make_channel
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.relay_client import post_chat

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("size", "tokens"),
    [
        ((1024, 1024), 765),
        ((2048, 4096), 1105),
        ((1920, 1080), 1105),
        ((512, 512), 255),
        ((300, 200), 255),
        ((8000, 1000), 765),
    ],
)
def test_tile_rule_matches_openais_worked_examples(size, tokens):
    assert tile_tokens(*size, "gpt-4o") == tokens


def test_gpt_4o_mini_uses_its_own_base_and_tile_tokens():
    assert tile_tokens(1024, 1024, "gpt-4o-mini") == 2833 + 5667 * 4


def png_data_url(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def vision_request(detail: str, url: str, stream: bool = False) -> dict:
    return {
        "model": "gpt-4o",
        "stream": stream,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": url, "detail": detail}},
                ],
            }
        ],
    }


def text_tokens(body: dict) -> int:
    return count_messages(body["messages"], Tokens("gpt-4o"))


@pytest.mark.parametrize(("detail", "image_tokens"), [("high", 765), ("auto", 765), ("low", 85)])
async def test_images_in_chat_are_counted_when_the_upstream_reports_no_usage(
    alice_key, openai_channel, fake_openai, detail, image_tokens
):
    fake_openai.script.append(Behaviour(usage=False))
    body = vision_request(detail, png_data_url(1024, 1024))
    response = await post_chat(alice_key, body)
    assert response.status_code == 200
    log = await Log.objects.aget(request_id=response["X-Request-Id"])
    assert log.prompt_tokens == text_tokens(body) + image_tokens


@override_settings(GET_MEDIA_TOKEN_NOT_STREAM=False)
async def test_not_stream_switch_skips_counting_for_non_stream_requests(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(Behaviour(usage=False))
    body = vision_request("high", png_data_url(1024, 1024))
    response = await post_chat(alice_key, body)
    assert (await Log.objects.aget(request_id=response["X-Request-Id"])).prompt_tokens == text_tokens(body)


async def test_an_unreadable_image_is_a_clear_400(alice_key, openai_channel, fake_openai):
    response = await post_chat(alice_key, vision_request("high", "data:image/png;base64,bm90IGFuIGltYWdl"))
    assert response.status_code == 400
    assert orjson.loads(response.content)["error"]["code"] == "invalid_image"
    assert not fake_openai.requests


async def test_azure_uses_the_deployment_url_api_version_and_api_key(alice_key, fake_openai, transactional_db):
    await asyncio.to_thread(
        make_channel,
        fake_openai.url,
        type="azure",
        models=["gpt-3.5-turbo"],
        key="azure-secret",
        config={"api_version": "2024-06-01"},
    )
    response = await post_chat(alice_key, {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    upstream = fake_openai.requests[0]
    assert upstream.path == "/openai/deployments/gpt-35-turbo/chat/completions"
    assert upstream.query == "api-version=2024-06-01"
    assert upstream.headers["api-key"] == "azure-secret" and "Authorization" not in upstream.headers


async def test_custom_channels_call_the_full_url(alice_key, fake_openai, transactional_db):
    await asyncio.to_thread(make_channel, f"{fake_openai.url}/proxy/{{model}}/chat", type="custom")
    response = await post_chat(alice_key, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert fake_openai.requests[0].path == "/proxy/gpt-4o/chat"
