"""Chat completions through the relay, in process, against the fake OpenAI upstream."""

import orjson
import pytest
from django.test import AsyncClient

from billing.models import Log, Token, User
from tests.conftest import ALICE_QUOTA
from tests.fakes.openai_upstream import PROMPT_TOKENS, REPLY, Behaviour

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def post(key: str, body: dict | bytes, path: str = "/v1/chat/completions"):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return AsyncClient().post(path, data, content_type="application/json", headers={"Authorization": f"Bearer {key}"})


async def test_it_relays_a_chat_answer_and_bills_upstream_usage(alice_key, openai_channel, fake_openai):
    response = await post(alice_key, HELLO)
    assert response.status_code == 200
    body = orjson.loads(response.content)
    assert body["choices"][0]["message"]["content"] == REPLY
    assert response["X-Request-Id"]
    assert float(response["X-Gateway-Time-Ms"]) >= 0
    assert fake_openai.requests[0].headers["Authorization"] == "Bearer sk-upstream-secret"
    expected = -(-(PROMPT_TOKENS + 6 * 4) * 1.25 // 1)  # (12 + 6 x 4) x 1.25 = 45
    log = await Log.objects.aget(request_id=response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (PROMPT_TOKENS, 6, expected)
    alice = await User.objects.aget(username="alice")
    assert alice.quota == ALICE_QUOTA - expected
