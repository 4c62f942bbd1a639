"""The hold covers what the request can cost: every answer it asks for (`n`), every completion the upstream
generates and bills (`best_of`, each prompt of a batch), each with its whole budget. A request whose worst
case does not fit what is left is refused before any upstream is called, and told both numbers."""

import asyncio
import re

import orjson
import pytest

from billing import pricing, quota
from billing.models import ApiKey, Log, Reservation, User
from relay.endpoints import COMPLETIONS
from relay.tokenizer import Tokens, count_messages, count_text
from tests.support.factories import ALICE_QUOTA, make_channel, make_key
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.relay_client import HELLO, post_chat
from tests.support.task_world import MJ_IMAGINE_COST, fresh, midjourney_server, mj_channel, post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

FANNED_OUT = {**HELLO, "n": 128, "max_tokens": 2000}
INSTRUCT = "gpt-3.5-turbo-instruct"
REFUSAL = re.compile(r"this request may cost up to (\d+) quota; (this API key|your account) has (\d+) left")


def worst_case(body: dict, completion_tokens: int) -> int:
    """The hold of a chat body after its prompt was counted exactly (as it is before a refusal)."""
    prompt = count_messages(body["messages"], Tokens(body["model"]))
    return pricing.current().quote(body["model"], "default").cost(prompt, completion_tokens)


async def refusal(response) -> tuple[int, str, int]:
    """(hold, who, left) of a 403 insufficient_quota answer."""
    assert response.status_code == 403, response.content
    error = orjson.loads(response.content)["error"]
    assert error["code"] == "insufficient_quota"
    found = REFUSAL.fullmatch(error["message"])
    assert found, error["message"]
    return int(found[1]), found[2], int(found[3])


def balances(token: ApiKey) -> tuple[int, int]:
    """(the key's remaining quota, its user's quota)."""
    token.refresh_from_db()
    return token.remain_quota, User.objects.get(pk=token.user_id).quota


async def test_n_choices_that_do_not_fit_the_key_are_refused_before_any_upstream_call(
    alice, openai_channel, fake_openai
):
    hold = await asyncio.to_thread(worst_case, FANNED_OUT, 128 * 2000)
    one_choice = await asyncio.to_thread(worst_case, FANNED_OUT, 2000)
    token, key = await asyncio.to_thread(make_key, alice, remain_quota=hold - 1)
    assert one_choice < hold - 1  # one answer would fit: only the n answers together do not

    assert await refusal(await post_chat(key, FANNED_OUT)) == (hold, "this API key", hold - 1)
    assert not fake_openai.requests
    assert await asyncio.to_thread(balances, token) == (hold - 1, ALICE_QUOTA)
    assert not await Reservation.objects.aexists()


async def test_n_choices_that_do_not_fit_the_account_are_refused_with_what_it_has_left(
    alice, openai_channel, fake_openai
):
    hold = await asyncio.to_thread(worst_case, FANNED_OUT, 128 * 2000)
    await User.objects.filter(pk=alice.pk).aupdate(quota=hold // 2)
    token, key = await asyncio.to_thread(make_key, alice, unlimited_quota=True)

    assert await refusal(await post_chat(key, FANNED_OUT)) == (hold, "your account", hold // 2)
    assert not fake_openai.requests
    assert await asyncio.to_thread(balances, token) == (token.remain_quota, hold // 2)


async def test_a_key_with_nothing_left_is_still_told_its_quota_is_exhausted(alice, openai_channel, fake_openai):
    _, key = await asyncio.to_thread(make_key, alice, remain_quota=0)
    response = await post_chat(key, HELLO)
    assert response.status_code == 403
    assert orjson.loads(response.content)["error"]["message"] == "this API key's quota is exhausted"
    assert not fake_openai.requests


async def test_n_choices_are_held_in_full_and_settled_at_what_they_really_used(alice, openai_channel, fake_openai):
    """The key holds exactly the worst case, and the upstream uses all of it: the key ends at 0, not below."""
    hold = await asyncio.to_thread(worst_case, FANNED_OUT, 128 * 2000)
    prompt = count_messages(FANNED_OUT["messages"], Tokens("gpt-4o"))
    every_token = {"prompt_tokens": prompt, "completion_tokens": 128 * 2000, "total_tokens": prompt + 256_000}
    answer = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o"}
    choices = [
        {"index": i, "message": {"role": "assistant", "content": "x"}, "finish_reason": "length"} for i in range(128)
    ]
    fake_openai.script.append(Behaviour(body={**answer, "choices": choices, "usage": every_token}))
    token, key = await asyncio.to_thread(make_key, alice, remain_quota=hold)

    response = await post_chat(key, FANNED_OUT)
    assert response.status_code == 200, response.content
    reservation = await Reservation.objects.aget(request_id=response["X-Request-Id"])
    assert (reservation.amount, reservation.state) == (hold, "settled")
    assert (await Log.objects.aget(request_id=response["X-Request-Id"])).quota == hold
    assert await asyncio.to_thread(balances, token) == (0, ALICE_QUOTA - hold)


async def test_a_fanned_out_request_that_uses_little_is_charged_little(alice_key, openai_channel, fake_openai):
    response = await post_chat(alice_key, FANNED_OUT)
    assert response.status_code == 200, response.content
    log = await Log.objects.aget(request_id=response["X-Request-Id"])
    assert log.quota == pricing.current().quote("gpt-4o", "default").cost(log.prompt_tokens, log.completion_tokens)
    held = (await Reservation.objects.aget(request_id=log.request_id)).amount
    assert held >= 128 * 2000 * 4 * 1.25 > log.quota  # 128 answers of 2000 tokens at completion ratio 4


@pytest.mark.parametrize(
    ("fields", "completions"),
    [
        ({}, 16),
        ({"max_tokens": 100, "n": 3}, 300),
        ({"max_tokens": 100, "n": 2, "best_of": 5}, 500),
        ({"max_tokens": 100, "best_of": 4}, 400),
        ({"max_tokens": 100, "n": 2, "prompt": ["a", "b", "c"]}, 600),
        ({"max_tokens": 10, "best_of": 3, "prompt": [[1, 2], [3]]}, 60),
        ({"max_tokens": 10, "prompt": [1, 2, 3]}, 10),
    ],
    ids=["default", "n", "best_of-over-n", "best_of", "batch-of-strings", "batch-of-token-arrays", "token-array"],
)
def test_a_completions_request_holds_every_completion_it_makes_the_upstream_generate(fields, completions):
    assert COMPLETIONS.most_completion_tokens({"prompt": "hi", **fields}) == completions


async def test_best_of_completions_that_do_not_fit_are_refused_before_any_upstream_call(alice, fake_openai):
    await asyncio.to_thread(make_channel, fake_openai.url, models=[INSTRUCT])
    body = {"model": INSTRUCT, "prompt": "Say hi", "max_tokens": 1000, "n": 2, "best_of": 20}
    quote = await asyncio.to_thread(lambda: pricing.current().quote(INSTRUCT, "default"))
    hold = quote.cost(count_text(INSTRUCT, "Say hi"), 20 * 1000)
    _, key = await asyncio.to_thread(make_key, alice, remain_quota=hold - 1)

    response = await post_chat(key, body, path="/v1/completions")
    assert await refusal(response) == (hold, "this API key", hold - 1)
    assert not fake_openai.requests


async def test_a_task_the_key_cannot_pay_for_is_told_its_price_and_what_is_left(alice):
    mj = fresh(midjourney_server("a"))
    await asyncio.to_thread(mj_channel, mj)
    _, key = await asyncio.to_thread(make_key, alice, remain_quota=MJ_IMAGINE_COST - 1)
    response = await post("/mj/submit/imagine", key, {"prompt": "a lighthouse"})
    assert response.status_code == 403 and mj.submits == []
    assert orjson.loads(response.content)["description"] == (
        f"this request may cost up to {MJ_IMAGINE_COST} quota; this API key has {MJ_IMAGINE_COST - 1} left"
    )


async def test_a_worst_case_past_any_balance_is_refused_as_such(alice_key, openai_channel, fake_openai):
    """(2^30 tokens x 128 answers x completion ratio 4) x model ratio 10^8 does not fit a 64-bit column."""
    await asyncio.to_thread(pricing.save, {"model_ratio": {"gpt-4o": 1e8}}, True)
    body = {**HELLO, "n": 128, "max_tokens": 2**30}
    response = await post_chat(alice_key, body)
    assert await refusal(response) == (quota.MAX_AMOUNT, "this API key", 5_000_000)
    assert not fake_openai.requests


def test_holds_too_large_to_add_up_are_each_refused_in_one_batch(alice):
    token, _ = make_key(alice)
    holds = [quota.Hold(f"r{n}", token.pk, alice.pk, False, quota.MAX_AMOUNT) for n in range(2)]
    refusals = quota.reserve_many(holds)
    assert [str(refused) for refused in refusals] == [
        f"this request may cost up to {quota.MAX_AMOUNT} quota; this API key has 5000000 left"
    ] * 2
    assert balances(token) == (5_000_000, ALICE_QUOTA)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {**HELLO, "n": 0}, "n"),
        ("/v1/chat/completions", {**HELLO, "n": 129}, "n"),
        ("/v1/chat/completions", {**HELLO, "n": "2"}, "n"),
        ("/v1/chat/completions", {**HELLO, "n": 1.5}, "n"),
        ("/v1/chat/completions", {**HELLO, "n": True}, "n"),
        ("/v1/completions", {"model": INSTRUCT, "prompt": "hi", "n": 200}, "n"),
        ("/v1/completions", {"model": INSTRUCT, "prompt": "hi", "best_of": 0}, "best_of"),
        ("/v1/completions", {"model": INSTRUCT, "prompt": "hi", "best_of": 21}, "best_of"),
        ("/v1/completions", {"model": INSTRUCT, "prompt": "hi", "n": 3, "best_of": 2}, "best_of"),
    ],
    ids=["n-0", "n-129", "n-string", "n-float", "n-bool", "completions-n-200", "best_of-0", "best_of-21", "best_of<n"],
)
async def test_an_invalid_number_of_answers_is_a_400_before_anything_is_held(
    alice_key, fake_openai, transactional_db, path, body, param
):
    await asyncio.to_thread(make_channel, fake_openai.url, models=["gpt-4o", INSTRUCT])
    response = await post_chat(alice_key, body, path=path)
    assert response.status_code == 400, response.content
    error = orjson.loads(response.content)["error"]
    assert (error["code"], error["param"]) == ("invalid_value", param)
    assert not fake_openai.requests
    assert not await Reservation.objects.aexists()
