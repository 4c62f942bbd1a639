"""Chat completions through the relay, in process, against the fake OpenAI upstream."""

import asyncio
import math
from datetime import timedelta

import orjson
import pytest
from django.test import AsyncClient, override_settings
from django.utils import timezone

from billing.accounts import key_auth
from billing.models import ApiKey, Log, Reservation, User
from relay.tokenizer import Tokens, count_messages, count_text, utf8_bytes
from tests.support.factories import ALICE_QUOTA, make_channel, make_key
from tests.support.fakes.openai_upstream import PROMPT_TOKENS, REPLY, Behaviour
from tests.support.relay_client import HELLO, post_chat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend, pytest.mark.cache]

GPT4O_COST = math.ceil((PROMPT_TOKENS + 6 * 4) * 1.25)  # ratio 1.25, completion ratio 4, 6 completion tokens


async def quota_of(username: str) -> int:
    return (await User.objects.aget(username=username)).quota


async def test_it_relays_a_chat_answer_and_bills_upstream_usage(alice_key, openai_channel, fake_openai):
    response = await post_chat(alice_key, HELLO)
    assert response.status_code == 200
    body = orjson.loads(response.content)
    assert body["choices"][0]["message"]["content"] == REPLY
    assert float(response["X-Gateway-Time-Ms"]) >= 0
    assert fake_openai.requests[0].headers["Authorization"] == "Bearer sk-upstream-secret"
    assert fake_openai.requests[0].body == HELLO  # forwarded unchanged
    log = await Log.objects.aget(request_id=response["X-Request-Id"])
    assert (log.type, log.prompt_tokens, log.completion_tokens, log.quota) == ("consume", PROMPT_TOKENS, 6, GPT4O_COST)
    assert "model ratio 1.25" in log.content and "completion ratio 4" in log.content
    assert await quota_of("alice") == ALICE_QUOTA - GPT4O_COST
    token = await ApiKey.objects.aget()
    assert (token.remain_quota, token.used_quota) == (5_000_000 - GPT4O_COST, GPT4O_COST)
    assert await Reservation.objects.filter(state="held").acount() == 0


@pytest.mark.parametrize("behaviour", [Behaviour(usage=False), Behaviour(zero_usage=True)], ids=["absent", "zero"])
async def test_missing_or_zero_usage_is_counted_locally(alice_key, openai_channel, fake_openai, behaviour):
    fake_openai.script.append(behaviour)
    response = await post_chat(alice_key, HELLO)
    assert response.status_code == 200
    log = await Log.objects.aget(request_id=response["X-Request-Id"])
    prompt = count_messages(HELLO["messages"], Tokens("gpt-4o"))
    assert (log.prompt_tokens, log.completion_tokens) == (prompt, count_text("gpt-4o", REPLY))
    assert "counted locally" in log.content


async def test_model_mapping_changes_only_the_upstream_body(alice_key, fake_openai, transactional_db):
    await asyncio.to_thread(make_channel, fake_openai.url, model_mapping={"gpt-4o": "gpt-4o-2024-08-06"})
    response = await post_chat(alice_key, HELLO)
    assert fake_openai.requests[0].body["model"] == "gpt-4o-2024-08-06"
    assert orjson.loads(response.content)["model"] == "gpt-4o"
    assert (await Log.objects.aget()).model == "gpt-4o"


def sse_events(content: bytes) -> list[bytes]:
    return [line[6:] for line in content.split(b"\n\n") if line.startswith(b"data: ")]


def delivered_text(events: list[bytes]) -> str:
    chunks = [orjson.loads(e) for e in events if e != b"[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c.get("choices"))


async def read_stream(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


async def settled_log(request_id: str) -> Log:
    for _ in range(200):
        log = await Log.objects.filter(request_id=request_id).afirst()
        if log is not None:
            return log
        await asyncio.sleep(0.02)
    raise AssertionError("the stream was never settled")


async def test_stream_with_usage_requested_gets_the_usage_chunk(alice_key, openai_channel, fake_openai):
    body = {**HELLO, "stream": True, "stream_options": {"include_usage": True}}
    response = await post_chat(alice_key, body)
    events = sse_events(await read_stream(response))
    assert events[-1] == b"[DONE]"
    usage_chunk = orjson.loads(events[-2])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 6
    assert delivered_text(events) == REPLY
    log = await settled_log(response["X-Request-Id"])
    assert log.content.startswith("stream ended normally") and log.quota == GPT4O_COST and log.is_stream


async def test_forced_usage_is_not_shown_to_a_client_that_did_not_ask(alice_key, openai_channel, fake_openai):
    response = await post_chat(alice_key, {**HELLO, "stream": True})
    events = sse_events(await read_stream(response))
    assert fake_openai.requests[0].body["stream_options"] == {"include_usage": True}
    assert all(orjson.loads(e).get("usage") is None for e in events[:-1])
    assert all(orjson.loads(e)["choices"] for e in events[:-1])
    log = await settled_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (PROMPT_TOKENS, 6)  # billed from the hidden usage chunk


async def test_stream_without_usage_is_counted_locally(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(Behaviour(usage=False))
    response = await post_chat(alice_key, {**HELLO, "stream": True, "stream_options": {"include_usage": True}})
    events = sse_events(await read_stream(response))
    synthetic = orjson.loads(events[-2])
    assert synthetic["usage"]["completion_tokens"] == count_text("gpt-4o", REPLY)
    log = await settled_log(response["X-Request-Id"])
    assert "no usage from upstream: counted locally" in log.content
    assert log.completion_tokens == count_text("gpt-4o", REPLY)


async def test_stream_cut_by_upstream_is_billed_for_what_was_delivered(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(Behaviour(die_after=3, chunk_delay=0.05))  # each chunk read before the cut
    response = await post_chat(alice_key, {**HELLO, "stream": True})
    events = sse_events(await read_stream(response))
    assert events[-1] == b"[DONE]"
    assert orjson.loads(events[-2])["error"]["code"] == "stream_interrupted"
    log = await settled_log(response["X-Request-Id"])
    assert log.content.startswith("upstream failed mid-stream")
    assert log.completion_tokens == count_text("gpt-4o", delivered_text(events)) > 0
    assert len(fake_openai.requests) == 1  # never retried once bytes were sent


@override_settings(STREAMING_TIMEOUT=0.5)
async def test_idle_upstream_ends_the_stream_and_bills_what_was_delivered(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(Behaviour(stall_after=2))
    response = await post_chat(alice_key, {**HELLO, "stream": True})
    events = sse_events(await read_stream(response))
    assert events[-1] == b"[DONE]"
    log = await settled_log(response["X-Request-Id"])
    assert log.content.startswith("upstream idle longer than STREAMING_TIMEOUT")
    assert delivered_text(events) == "Hello from"  # chunks 0-2 went out before the stall
    assert log.completion_tokens == count_text("gpt-4o", "Hello from")


async def test_client_disconnect_stops_the_upstream_and_bills_what_was_delivered(
    alice_key, openai_channel, fake_openai
):
    from tests.support.asgi_harness import StreamingCall

    fake_openai.script.append(Behaviour(chunk_delay=0.3))
    call = StreamingCall(
        "/v1/chat/completions",
        orjson.dumps({**HELLO, "stream": True}),
        {"Authorization": f"Bearer {alice_key}", "Content-Type": "application/json"},
        disconnect_after=2,
    )
    await asyncio.wait_for(call.run(), 10)
    log = await settled_log(await _only_request_id())
    assert log.content.startswith("client disconnected")
    assert log.completion_tokens < 6
    for _ in range(100):
        if fake_openai.cancelled_streams:
            break
        await asyncio.sleep(0.02)
    assert fake_openai.cancelled_streams == 1


async def _only_request_id() -> str:
    for _ in range(200):
        reservation = await Reservation.objects.afirst()
        if reservation is not None:
            return reservation.request_id
        await asyncio.sleep(0.02)
    raise AssertionError("no request reached the reservation step")


async def test_an_upstream_cookie_does_not_follow_later_requests(alice_key, openai_channel, fake_openai):
    """Every request of the process shares one HTTP client: one answer's Set-Cookie stays out of the rest."""
    fake_openai.script.append(Behaviour(headers={"Set-Cookie": "session=first-callers-only; Path=/"}))
    for _ in range(2):
        assert (await post_chat(alice_key, HELLO)).status_code == 200
    assert "Cookie" not in fake_openai.requests[1].headers


async def test_failure_before_the_first_byte_charges_nothing(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(Behaviour(status=500, body={"error": {"message": "boom", "type": "server_error"}}))
    response = await post_chat(alice_key, {**HELLO, "stream": True})
    assert response.status_code == 500
    assert orjson.loads(response.content)["error"]["message"] == "boom"
    assert await quota_of("alice") == ALICE_QUOTA
    assert await Reservation.objects.filter(state="released").acount() == 1
    assert not await Log.objects.filter(type="consume").aexists()


async def test_a_500_is_retried_on_another_channel_and_billed_once(alice_key, fake_openai, transactional_db):
    await asyncio.to_thread(make_channel, fake_openai.url, name="a")
    await asyncio.to_thread(make_channel, fake_openai.url, name="b")
    fake_openai.script.append(Behaviour(status=500, body={"error": {"message": "boom"}}))
    response = await post_chat(alice_key, HELLO)
    assert response.status_code == 200
    assert len(fake_openai.requests) == 2
    assert await Log.objects.filter(type="consume").acount() == 1
    assert await quota_of("alice") == ALICE_QUOTA - GPT4O_COST


async def error_of(response) -> tuple[int, str]:
    return response.status_code, orjson.loads(response.content)["error"]["code"]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[]", "invalid_body"),
        (orjson.dumps({"messages": [{"role": "user", "content": "hi"}]}), "missing_model"),
        (orjson.dumps({"model": "gpt-4o"}), "missing_messages"),
        (orjson.dumps({"model": "gpt-4o", "messages": []}), "missing_messages"),
        (orjson.dumps({**HELLO, "max_tokens": -1}), "invalid_value"),
        (orjson.dumps({**HELLO, "stream": "yes"}), "invalid_value"),
    ],
)
async def test_bad_bodies_get_a_400_and_charge_nothing(alice_key, openai_channel, fake_openai, raw, code):
    assert await error_of(await post_chat(alice_key, raw)) == (400, code)
    assert await quota_of("alice") == ALICE_QUOTA
    assert not fake_openai.requests


@override_settings(RELAY_MAX_BODY_BYTES=1000, DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
async def test_a_body_over_the_limit_gets_413(alice_key, openai_channel):
    big = {**HELLO, "messages": [{"role": "user", "content": "x" * 2000}]}
    assert await error_of(await post_chat(alice_key, big)) == (413, "body_too_large")


async def test_key_errors(alice, openai_channel, transactional_db):
    assert await error_of(await AsyncClient().post("/v1/chat/completions", HELLO, content_type="application/json")) == (
        401,
        "missing_api_key",
    )
    assert await error_of(await post_chat("sk-" + "x" * 48, HELLO)) == (401, "invalid_api_key")
    _, disabled = await asyncio.to_thread(make_key, alice, status="disabled")
    assert await error_of(await post_chat(disabled, HELLO)) == (403, "key_disabled")
    _, expired = await asyncio.to_thread(make_key, alice, expires_at=timezone.now() - timedelta(minutes=1))
    assert await error_of(await post_chat(expired, HELLO)) == (403, "key_expired")
    _, limited = await asyncio.to_thread(make_key, alice, model_limits=["gpt-4o-mini"])
    assert await error_of(await post_chat(limited, HELLO)) == (403, "model_not_allowed")
    _, fenced = await asyncio.to_thread(make_key, alice, allow_ips=["10.0.0.0/8"])
    assert await error_of(await post_chat(fenced, HELLO)) == (403, "ip_not_allowed")
    _, local = await asyncio.to_thread(make_key, alice, allow_ips=["127.0.0.0/8"])
    assert (await post_chat(local, HELLO)).status_code == 200
    _, empty = await asyncio.to_thread(make_key, alice, remain_quota=0)
    assert await error_of(await post_chat(empty, HELLO)) == (403, "insufficient_quota")


async def test_a_key_deleted_behind_a_cached_copy_gets_401_and_reaches_no_upstream(
    alice, openai_channel, fake_openai, monkeypatch
):
    token, key = await asyncio.to_thread(make_key, alice)
    assert (await post_chat(key, HELLO)).status_code == 200
    body, _ = key_auth.parse_key(key)
    assert key_auth.RECENT.peek(body) is not None
    monkeypatch.setattr(key_auth.RECENT, "forget", lambda: None)  # as another instance keeps its copy a while
    await token.adelete()
    assert await error_of(await post_chat(key, HELLO)) == (401, "invalid_api_key")
    assert len(fake_openai.requests) == 1


async def test_unknown_model_gets_404_model_not_found(alice_key, openai_channel):
    status, code = await error_of(await post_chat(alice_key, {**HELLO, "model": "nobody-serves-this"}))
    assert (status, code) == (404, "model_not_found")
    assert await quota_of("alice") == ALICE_QUOTA


async def test_models_lists_what_the_key_may_use(alice, fake_openai, transactional_db):
    await asyncio.to_thread(make_channel, fake_openai.url, models=["gpt-4o", "gpt-4o-mini"])
    _, limited = await asyncio.to_thread(make_key, alice, model_limits=["gpt-4o-mini"])
    response = await AsyncClient().get("/v1/models", headers={"Authorization": f"Bearer {limited}"})
    assert [m["id"] for m in orjson.loads(response.content)["data"]] == ["gpt-4o-mini"]


async def test_unknown_routes_answer_404_in_openai_shape(alice_key):
    response = await AsyncClient().get("/v1/nothing-here", headers={"Authorization": f"Bearer {alice_key}"})
    assert response.status_code == 404 and "error" in orjson.loads(response.content)


@pytest.mark.backend
async def test_fifty_parallel_requests_never_overspend_a_key(alice, openai_channel, fake_openai):
    body = {**HELLO, "max_tokens": 100}
    reservation = math.ceil((count_messages(HELLO["messages"], utf8_bytes) + 100 * 4) * 1.25)
    token, key = await asyncio.to_thread(make_key, alice, remain_quota=10 * reservation)
    responses = await asyncio.gather(*(post_chat(key, body) for _ in range(50)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 403} and statuses.count(200) >= 10
    await token.arefresh_from_db()
    spent = sum([log.quota async for log in Log.objects.filter(type="consume")])
    assert token.remain_quota >= 0
    assert token.remain_quota == 10 * reservation - spent == 10 * reservation - statuses.count(200) * GPT4O_COST
    assert await Reservation.objects.filter(state="held").acount() == 0


async def test_a_bug_inside_the_gateway_answers_500_in_openai_shape_and_releases_the_quota(
    alice_key, openai_channel, fake_openai, monkeypatch
):
    from relay.adaptors.openai import OpenAIAdaptor

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(OpenAIAdaptor, "convert_response", broken)
    response = await post_chat(alice_key, HELLO)
    assert response.status_code == 500
    assert orjson.loads(response.content)["error"]["code"] == "internal_error"
    assert b"a bug" not in response.content
    assert await quota_of("alice") == ALICE_QUOTA
    assert await Reservation.objects.filter(state="held").acount() == 0
