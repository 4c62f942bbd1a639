"""A model no channel of the key's group serves is OpenAI's 404 model_not_found, which SDKs do not retry;
503 no_channel stays for a model whose channels exist but are all switched off."""

import asyncio

import httpx
import openai
import orjson
import pytest

from channels_app.models import Channel
from tests.support.factories import make_channel
from tests.support.live_server import LiveGateway
from tests.support.relay_client import HELLO, post_chat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]


async def error_body(key: str, model: str) -> tuple[int, dict]:
    response = await post_chat(key, {**HELLO, "model": model})
    return response.status_code, orjson.loads(response.content)["error"]


async def test_an_unknown_model_is_answered_as_openai_does(alice_key, openai_channel, fake_openai):
    assert await error_body(alice_key, "gpt-9") == (
        404,
        {
            "message": "The model `gpt-9` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        },
    )
    assert fake_openai.requests == []


async def test_a_model_only_another_group_serves_is_unknown_to_this_key(alice_key, fake_openai, transactional_db):
    await asyncio.to_thread(make_channel, fake_openai.url, models=["gpt-4o"], groups=["vip"])
    status, error = await error_body(alice_key, "gpt-4o")
    assert (status, error["code"]) == (404, "model_not_found")


@pytest.mark.parametrize("status", [Channel.Status.DISABLED, Channel.Status.AUTO_DISABLED])
async def test_a_model_whose_channels_are_all_off_stays_503(alice_key, fake_openai, transactional_db, status):
    await asyncio.to_thread(make_channel, fake_openai.url, models=["gpt-4o", "tenant-*"], status=status)
    for model in ("gpt-4o", "tenant-a1"):
        code, error = await error_body(alice_key, model)
        assert (code, error["code"]) == (503, "no_channel")
    code, error = await error_body(alice_key, "other-model")
    assert (code, error["code"]) == (404, "model_not_found")


@pytest.fixture
def gateway(transactional_db):
    server = LiveGateway()
    yield server
    server.stop()


def test_the_openai_sdk_raises_not_found_without_retrying(gateway, alice_key, openai_channel, fake_openai):
    sent = []
    http_client = httpx.Client(event_hooks={"request": [sent.append]})
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=alice_key, http_client=http_client)
    assert client.max_retries == 2  # the SDK's default, which retries a 503 twice
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-9", messages=HELLO["messages"])
    assert raised.value.code == "model_not_found"
    assert len(sent) == 1
    assert fake_openai.requests == []
