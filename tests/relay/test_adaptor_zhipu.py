"""Zhipu channels: JWT auth from `id.secret` keys, the v4 API's limits, and the relay against a fake Zhipu."""

import base64
import math

import orjson
import pytest
from django.test import AsyncClient

from billing.models import Log
from billing.pricing import DEFAULT_MODEL_RATIO_TABLE
from channels_app.routing import ChannelInfo
from relay import sse
from relay.adaptors import zhipu
from relay.adaptors.zhipu import ZhipuAdaptor
from tests.support.factories import make_channel
from tests.support.fakes import zhipu_upstream as fake
from tests.support.fakes.recording import Behaviour, served
from tests.support.fakes.zhipu_upstream import FakeZhipu
from tests.support.relay_client import (
    assembled_text,
    chat_request,
    chunks_of,
    consume_log,
    finish_reasons,
    post_chat,
    sse_payloads,
)

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "glm-4"
HI = {"role": "user", "content": "hi"}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="  # 1x1
ADAPTOR = ZhipuAdaptor()


def chat(**fields) -> dict:
    return {"model": MODEL, "messages": [HI], **fields}


def channel_info(key: str = fake.API_KEY, **fields) -> ChannelInfo:
    fields.setdefault("base_url", "")
    return ChannelInfo(id=1, name="glm", type="zhipu", key=key, priority=0, weight=1, **fields)


def bearer(key: str = fake.API_KEY) -> str:
    outgoing = ADAPTOR.build_request(chat_request(chat()), channel_info(key))
    return outgoing.headers["Authorization"].removeprefix("Bearer ")


def upstream_body(body: dict) -> dict:
    return orjson.loads(ADAPTOR.build_request(chat_request(body), channel_info()).content)


@pytest.fixture(autouse=True)
def _no_cached_tokens() -> None:
    zhipu.Tokens.cached = {}


# --- auth ---


def test_it_signs_an_id_secret_key_into_a_jwt_with_millisecond_claims():
    token = bearer()
    header = orjson.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "HS256", "sign_type": "SIGN"}
    claims = fake.verified_claims(token)
    assert claims is not None
    assert claims["exp"] - claims["timestamp"] == zhipu.TOKEN_TTL_SECONDS * 1000
    assert fake.SECRET not in token


def test_it_reuses_a_token_until_shortly_before_it_expires(monkeypatch):
    first = bearer()
    assert bearer() == first
    later = zhipu.time.time() + zhipu.TOKEN_TTL_SECONDS - zhipu.RENEW_BEFORE_SECONDS + 1
    monkeypatch.setattr(zhipu.time, "time", lambda: later)
    assert bearer() != first


def test_it_sends_a_key_without_a_dot_as_a_plain_bearer_key():
    assert bearer("plain-zhipu-key") == "plain-zhipu-key"


# --- request mapping ---


def test_it_posts_chat_and_embeddings_to_the_v4_paths():
    assert ADAPTOR.build_request(chat_request(chat()), channel_info()).url == (
        "https://open.bigmodel.cn/api/paas/v4/chat/completions"
    )
    proxied = channel_info(base_url="https://proxy.example/api/paas/v4")
    assert ADAPTOR.url(chat_request(chat()), proxied) == "https://proxy.example/api/paas/v4/chat/completions"
    embed = chat_request(chat())
    embed.endpoint, embed.path = "embeddings", "/v1/embeddings"
    assert ADAPTOR.url(embed, channel_info()) == "https://open.bigmodel.cn/api/paas/v4/embeddings"


def test_it_keeps_sampling_values_inside_zhipus_ranges():
    body = upstream_body(
        chat(top_p=1, temperature=1.5, stop="END", stream=True, stream_options={"include_usage": True})
    )
    assert (body["top_p"], body["temperature"], body["stop"]) == (0.99, 1.0, ["END"])
    assert "stream_options" not in body
    greedy = upstream_body(chat(temperature=0, top_p=0))
    assert "temperature" not in greedy and greedy["do_sample"] is False and greedy["top_p"] == 0.01


def test_it_sends_glm_4v_images_as_raw_base64_or_url():
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": "https://example.com/cat.jpg"},
    ]
    parts = upstream_body(chat(model="glm-4v", messages=[{"role": "user", "content": content}]))["messages"][0][
        "content"
    ]
    assert parts[1] == {"type": "image_url", "image_url": {"url": PNG}}
    assert parts[2] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}


def test_it_maps_the_sensitive_finish_reason_to_content_filter():
    blocked = {"id": "1", "choices": [{"index": 0, "message": {"content": ""}, "finish_reason": "sensitive"}]}
    answer, _, _ = ADAPTOR.convert_response(chat_request(chat()), orjson.dumps(blocked))
    assert orjson.loads(answer)["choices"][0]["finish_reason"] == "content_filter"


# --- through the relay, against the fake Zhipu ---


fake_zhipu_server, fake_zhipu = served(FakeZhipu, "fake_zhipu")


@pytest.fixture
def glm_channel(fake_zhipu: FakeZhipu, transactional_db):
    return make_channel(fake_zhipu.url, models=[MODEL, "glm-4v", "embedding-3"], key=fake.API_KEY, type="zhipu")


def glm_quota(model: str = MODEL) -> int:
    return math.ceil(round((fake.PROMPT_TOKENS + fake.COMPLETION_TOKENS) * DEFAULT_MODEL_RATIO_TABLE[model], 6))


async def test_it_relays_a_glm_4v_image_question_signed_with_a_jwt_and_bills_zhipus_usage(
    alice_key, glm_channel, fake_zhipu
):
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    question = {"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]}
    response = await post_chat(alice_key, chat(model="glm-4v", messages=[question]))
    assert response.status_code == 200
    body = orjson.loads(response.content)
    assert body["choices"][0]["message"]["content"] == fake.REPLY
    assert body["model"] == "glm-4v"
    sent = fake_zhipu.requests[0]
    assert sent.path == "/api/paas/v4/chat/completions"
    assert sent.body["messages"][0]["content"][1]["image_url"]["url"] == PNG
    assert fake_zhipu.claims[0]["api_key"] == fake.API_ID
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (fake.PROMPT_TOKENS, fake.COMPLETION_TOKENS)
    assert log.quota == glm_quota("glm-4v")


async def test_it_streams_and_keeps_zhipus_usage_chunk_from_a_client_that_did_not_ask(
    alice_key, glm_channel, fake_zhipu
):
    response = await post_chat(alice_key, chat(stream=True))
    payloads = await sse_payloads(response)
    assert payloads[-1] == sse.DONE
    chunks = chunks_of(payloads)
    assert assembled_text(chunks) == fake.REPLY
    assert finish_reasons(chunks) == ["stop"]
    assert not any("usage" in chunk for chunk in chunks)
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (
        fake.PROMPT_TOKENS,
        fake.COMPLETION_TOKENS,
        glm_quota(),
    )
    assert log.content.startswith("stream ended normally;")


async def test_it_streams_zhipus_usage_to_a_client_that_asked(alice_key, glm_channel, fake_zhipu):
    response = await post_chat(alice_key, chat(stream=True, stream_options={"include_usage": True}))
    chunks = chunks_of(await sse_payloads(response))
    assert [chunk["usage"]["total_tokens"] for chunk in chunks if chunk.get("usage")] == [18]


async def test_it_relays_embeddings(alice_key, glm_channel, fake_zhipu):
    response = await AsyncClient().post(
        "/v1/embeddings",
        {"model": "embedding-3", "input": "hello"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {alice_key}"},
    )
    assert orjson.loads(response.content)["data"][0]["embedding"] == fake.EMBEDDING
    assert fake_zhipu.requests[0].path == "/api/paas/v4/embeddings"


@pytest.fixture
def glm_channel_with_bad_secret(fake_zhipu: FakeZhipu, transactional_db):
    return make_channel(fake_zhipu.url, models=[MODEL], key=f"{fake.API_ID}.wrong-secret", type="zhipu")


async def test_it_returns_zhipus_error_message_without_leaking_the_key(
    alice_key, glm_channel_with_bad_secret, fake_zhipu
):
    response = await post_chat(alice_key, chat())
    assert response.status_code == 401
    assert orjson.loads(response.content)["error"]["message"] == fake.AUTH_FAILED["error"]["message"]
    assert b"wrong-secret" not in response.content
    failure = await Log.objects.aget(request_id=response["X-Request-Id"], type=Log.Type.ERROR)
    assert "wrong-secret" not in failure.content


async def test_it_passes_a_content_filter_stop_to_the_stream(alice_key, glm_channel, fake_zhipu):
    fake_zhipu.script.append(Behaviour(finish_reason="sensitive"))
    response = await post_chat(alice_key, chat(stream=True))
    assert finish_reasons(chunks_of(await sse_payloads(response))) == ["content_filter"]
