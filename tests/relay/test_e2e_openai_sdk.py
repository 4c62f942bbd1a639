"""End to end: the real server (daphne), set up through the management API, called with the official SDK."""

import asyncio
import math

import httpx
import openai
import pytest

from billing.models import User
from tests.support.fakes.openai_upstream import PROMPT_TOKENS, REPLY
from tests.support.live_server import LiveGateway, consume_logs

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend, pytest.mark.cache]

COST = math.ceil((PROMPT_TOKENS + 6 * 4) * 1.25)  # gpt-4o: ratio 1.25, completion ratio 4
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def gateway(transactional_db):
    server = LiveGateway({"SETTLE_AFTER_ANSWER": "true"})  # as in production: the ledger follows the answer
    yield server
    server.stop()


def provision(gateway: LiveGateway, access_token: str, upstream_url: str) -> tuple[str, int]:
    """Channel, user and key through the management API, as an operator would."""
    api = httpx.Client(base_url=f"{gateway.url}/api", headers={"Authorization": f"Bearer {access_token}"})
    channel = api.post(
        "/channels",
        json={
            "name": "fake",
            "type": "openai",
            "key": "sk-upstream-secret",
            "base_url": upstream_url,
            "models": ["gpt-4o"],
        },
    )
    assert channel.status_code == 201, channel.text
    user = api.post("/users", json={"username": "carol", "password": "carol-pass-123"})
    assert user.status_code == 201, user.text
    user_id = user.json()["id"]
    assert api.post(f"/users/{user_id}/quota", json={"delta": 1_000_000, "reason": "test"}).status_code == 200
    key = api.post("/tokens", json={"user_id": user_id, "name": "sdk", "remain_quota": 500_000})
    assert key.status_code == 201, key.text
    return key.json()["key"], user_id


def test_the_sdk_gets_answers_and_quota_drops_by_the_formula(gateway, access_token, fake_openai):
    key, user_id = provision(gateway, access_token, fake_openai.url)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)

    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == REPLY
    assert answer.usage.prompt_tokens == PROMPT_TOKENS

    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert chunks[-1].usage.completion_tokens == 6

    async def async_calls() -> None:
        aclient = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        reply = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert reply.choices[0].message.content == REPLY
        pieces = [
            c async for c in await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        ]
        assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices) == REPLY
        assert all(c.usage is None for c in pieces)  # did not ask for usage: no usage chunk

    asyncio.run(async_calls())

    logs = consume_logs(4)
    assert len(logs) == 4
    assert {(log.prompt_tokens, log.completion_tokens, log.quota) for log in logs} == {(PROMPT_TOKENS, 6, COST)}
    assert len({log.request_id for log in logs}) == 4
    assert User.objects.get(pk=user_id).quota == 1_000_000 - 4 * COST
    token = User.objects.get(pk=user_id).api_keys.get()
    assert (token.remain_quota, token.used_quota) == (500_000 - 4 * COST, 4 * COST)


def test_sdk_errors_arrive_in_openai_shape(gateway, access_token, fake_openai):
    key, _ = provision(gateway, access_token, fake_openai.url)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-wrong", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="not-served", messages=MESSAGES)
    assert raised.value.code == "model_not_found"
