"""Zhipu, Cohere and Dify end to end with the official SDK, and /v1/rerank on Jina and Cohere with plain
httpx: the real server against fakes that speak each provider's wire format."""

import httpx
import openai
import pytest

from tests.support.factories import make_channel, make_key
from tests.support.fakes import cohere_upstream, dify_upstream, jina_upstream, zhipu_upstream
from tests.support.fakes.openai_upstream import start
from tests.support.fakes.recording import Behaviour
from tests.support.live_server import LiveGateway, consume_logs

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Where is it sunny?"}]
CHANNELS = {  # model -> (fake class, channel type, upstream key)
    "glm-4": (zhipu_upstream.FakeZhipu, "zhipu", zhipu_upstream.API_KEY),
    "command-r-plus": (cohere_upstream.FakeCohere, "cohere", cohere_upstream.API_KEY),
    "dify-support-bot": (dify_upstream.FakeDify, "dify", dify_upstream.APP_KEY),
    "jina-reranker-v2-base-multilingual": (jina_upstream.FakeJina, "jina", jina_upstream.API_KEY),
}
REPLIES = {
    "glm-4": zhipu_upstream.REPLY,
    "command-r-plus": cohere_upstream.REPLY,
    "dify-support-bot": dify_upstream.ANSWER,
}


@pytest.fixture(scope="module")
def fakes() -> dict:
    started = {}
    for model, (fake_class, _, _) in CHANNELS.items():
        started[model] = fake_class()
        start(started[model])
    return started


@pytest.fixture
def gateway(alice, fakes):
    for model, (_, channel_type, key) in CHANNELS.items():
        fakes[model].reset()
        make_channel(fakes[model].url, models=[model], key=key, type=channel_type, name=channel_type)
    make_channel(
        fakes["command-r-plus"].url,
        models=["rerank-multilingual-v3.0"],
        key=cohere_upstream.API_KEY,
        type="cohere",
        name="cohere-rerank",
    )
    _, key = make_key(alice)
    server = LiveGateway()
    yield server, key
    server.stop()


@pytest.mark.parametrize("model", list(REPLIES))
def test_chat_and_streams_through_the_sdk(gateway, fakes, model):
    server, key = gateway
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    answer = client.chat.completions.create(model=model, messages=MESSAGES)
    assert answer.choices[0].message.content == REPLIES[model]
    stream = list(
        client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLIES[model]
    assert stream[-1].usage is not None and stream[-1].usage.total_tokens > 0
    fakes[model].script.append(
        Behaviour(status=500, body={"error": {"message": "upstream exploded"}, "message": "upstream exploded"})
    )
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model=model, messages=MESSAGES)
    assert "upstream exploded" in raised.value.message
    assert CHANNELS[model][2] not in raised.value.message
    assert all(log.quota > 0 for log in consume_logs(2, model=model))


@pytest.mark.parametrize("model", ["jina-reranker-v2-base-multilingual", "rerank-multilingual-v3.0"])
def test_rerank_with_plain_httpx(gateway, model):
    server, key = gateway
    body = {
        "model": model,
        "query": "reset the router",
        "top_n": 2,
        "documents": ["Hold the reset button for 10 seconds.", "The office is closed on holidays."],
    }
    response = httpx.post(f"{server.url}/v1/rerank", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0]["index"] == 0 and len(results) == 2
    assert len(consume_logs(1, model=model)) == 1
