"""How the prompt is counted: a byte bound for the reservation, which needs no tokenizer; the exact count
only when a bill or a tight reservation needs it, on a worker thread when the prompt is large."""

import asyncio
import math
import threading

import orjson
import pytest

from billing import pricing
from billing.models import Log, Reservation
from relay import endpoints, tokenizer
from relay.adaptors.base import RelayRequest
from relay.tokenizer import Tokens, count_messages, utf8_bytes
from tests.support.factories import make_key
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.relay_client import post_chat

pytestmark = pytest.mark.django_db(transaction=True)

# Every character of this prompt is one byte, but it is far fewer tokens.
PROMPT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "the quick brown fox " * 50}], "max_tokens": 10}


def hold(measure) -> int:
    """What the request holds: (prompt + max_tokens x completion ratio 4) x model ratio 1.25."""
    return math.ceil((count_messages(PROMPT["messages"], measure) + 10 * 4) * 1.25)


def chat_request(raw_size: int) -> RelayRequest:
    return RelayRequest("chat", "gpt-4o", {}, raw=b" " * raw_size, stream=False, wants_usage=False)


async def test_only_a_large_prompt_or_an_unbuilt_encoding_is_counted_on_another_thread(monkeypatch):
    threads = []
    endpoint = endpoints.Chat()
    monkeypatch.setattr(endpoint, "prompt_tokens", lambda request, measure: threads.append(threading.current_thread()))
    tokenizer.encoding_for("gpt-4o")
    await endpoints.count_prompt(endpoint, chat_request(endpoints.LARGE_BODY_BYTES))
    await endpoints.count_prompt(endpoint, chat_request(100))
    monkeypatch.setattr(tokenizer, "_built", {})
    await endpoints.count_prompt(endpoint, chat_request(100))
    assert [thread is threading.current_thread() for thread in threads] == [False, True, False]


async def test_a_large_prompt_is_billed_by_its_exact_count(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(Behaviour(usage=False))
    messages = [{"role": "user", "content": "a" * 200_000}]
    response = await post_chat(alice_key, {"model": "gpt-4o", "messages": messages})
    assert response.status_code == 200, response.content
    log = await Log.objects.aget(request_id=response["X-Request-Id"])
    assert log.prompt_tokens == count_messages(messages, Tokens("gpt-4o"))
    assert orjson.loads(response.content)["object"] == "chat.completion"


async def test_an_upstream_that_reports_usage_never_needs_the_tokenizer(
    alice_key, openai_channel, fake_openai, monkeypatch
):
    monkeypatch.setattr(tokenizer, "_built", {})
    response = await post_chat(alice_key, PROMPT)
    assert response.status_code == 200, response.content
    assert tokenizer._built == {}
    reservation = await Reservation.objects.aget(request_id=response["X-Request-Id"])
    assert reservation.amount == hold(utf8_bytes) > hold(Tokens("gpt-4o"))


async def test_a_key_short_of_the_bound_is_held_by_the_exact_count(alice, openai_channel, fake_openai):
    _, key = await asyncio.to_thread(make_key, alice, remain_quota=hold(Tokens("gpt-4o")))
    response = await post_chat(key, PROMPT)
    assert response.status_code == 200, response.content
    reservation = await Reservation.objects.aget(request_id=response["X-Request-Id"])
    assert reservation.amount == hold(Tokens("gpt-4o"))


async def test_a_key_short_of_the_exact_count_is_refused(alice, openai_channel, fake_openai):
    _, key = await asyncio.to_thread(make_key, alice, remain_quota=hold(Tokens("gpt-4o")) - 1)
    response = await post_chat(key, PROMPT)
    assert response.status_code == 403
    assert orjson.loads(response.content)["error"]["code"] == "insufficient_quota"
    assert not fake_openai.requests


async def test_a_fixed_price_refusal_counts_nothing(alice, openai_channel, fake_openai, monkeypatch):
    await asyncio.to_thread(pricing.save, {"model_price": {"gpt-4o": 1.0}}, merge=True)
    _, key = await asyncio.to_thread(make_key, alice, remain_quota=pricing.current().quota_per_unit - 1)
    monkeypatch.setattr(tokenizer, "_built", {})
    response = await post_chat(key, PROMPT)
    assert response.status_code == 403
    assert tokenizer._built == {}  # the prompt is no part of a fixed price, so no encoding was built to count it
