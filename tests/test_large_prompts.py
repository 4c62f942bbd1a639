"""A large prompt is counted on a worker thread, so one huge request does not stall everyone else's."""

import threading

import orjson
import pytest

from billing.models import Log
from relay import endpoints
from relay.adaptors.base import RelayRequest
from relay.tokenizer import count_messages
from tests.fakes.openai_upstream import Behaviour
from tests.relay_client import post_chat


def chat_request(raw_size: int) -> RelayRequest:
    return RelayRequest("chat", "gpt-4o", {}, raw=b" " * raw_size, stream=False, wants_usage=False)


async def test_only_a_large_body_is_counted_on_another_thread():
    threads = []

    def count() -> int:
        threads.append(threading.current_thread())
        return 7

    assert await endpoints.counted(chat_request(endpoints.LARGE_BODY_BYTES), count) == 7
    assert await endpoints.counted(chat_request(100), count) == 7
    assert threads[0] is not threading.current_thread()
    assert threads[1] is threading.current_thread()


@pytest.mark.django_db(transaction=True)
async def test_a_large_prompt_is_billed_by_its_exact_count(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(Behaviour(usage=False))
    messages = [{"role": "user", "content": "a" * 200_000}]
    response = await post_chat(alice_key, {"model": "gpt-4o", "messages": messages})
    assert response.status_code == 200, response.content
    log = await Log.objects.aget(request_id=response["X-Request-Id"])
    assert log.prompt_tokens == count_messages("gpt-4o", messages)
    assert orjson.loads(response.content)["object"] == "chat.completion"
