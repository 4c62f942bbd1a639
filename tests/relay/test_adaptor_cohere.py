"""Cohere channels: OpenAI chat <-> Cohere chat v1 (history kept whole), NDJSON streams, safety mode, and
the relay against a fake Cohere. Rerank is covered in test_rerank."""

import math

import orjson
import pytest
from django.test import override_settings

from billing.models import Log
from billing.pricing import DEFAULT_COMPLETION_RATIO_TABLE, DEFAULT_MODEL_RATIO_TABLE
from channels_app.routing import ChannelInfo
from relay import sse
from relay.adaptors.base import UpstreamFailed, Usage
from relay.adaptors.cohere import CohereAdaptor
from relay.errors import RelayError
from tests.support.factories import make_channel
from tests.support.fakes import cohere_upstream as fake
from tests.support.fakes.cohere_upstream import FakeCohere
from tests.support.fakes.recording import Behaviour, served
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

MODEL = "command-r-plus"
HI = {"role": "user", "content": "Which city?"}
ADAPTOR = CohereAdaptor()


def chat(**fields) -> dict:
    return {"model": MODEL, "messages": [HI], **fields}


def channel_info(**fields) -> ChannelInfo:
    fields.setdefault("base_url", "")
    return ChannelInfo(id=1, name="co", type="cohere", key=fake.API_KEY, priority=0, weight=1, **fields)


def upstream_body(body: dict) -> dict:
    return orjson.loads(ADAPTOR.build_request(chat_request(body), channel_info()).content)


# --- request mapping ---


def test_it_posts_to_v1_chat_with_a_bearer_key():
    outgoing = ADAPTOR.build_request(
        chat_request(chat()), channel_info(model_mapping={MODEL: "command-r-plus-08-2024"})
    )
    assert outgoing.url == "https://api.cohere.ai/v1/chat"
    assert outgoing.headers["Authorization"] == f"Bearer {fake.API_KEY}"
    assert orjson.loads(outgoing.content)["model"] == "command-r-plus-08-2024"


def test_it_keeps_every_earlier_turn_in_chat_history_and_sends_the_last_user_turn_as_message():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I am in Portugal."},
        {"role": "assistant", "content": "Nice."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Which city"}, {"type": "text", "text": "is the capital?"}],
        },
    ]
    body = upstream_body(chat(messages=messages))
    assert body["preamble"] == "Be brief."
    assert body["chat_history"] == [
        {"role": "USER", "message": "I am in Portugal."},
        {"role": "CHATBOT", "message": "Nice."},
    ]
    assert body["message"] == "Which city\nis the capital?"


def test_it_renames_sampling_fields():
    body = upstream_body(chat(temperature=0.3, top_p=0.8, top_k=40, seed=1, max_tokens=99, stop="END", stream=True))
    assert (body["temperature"], body["p"], body["k"], body["seed"], body["max_tokens"]) == (0.3, 0.8, 40, 1, 99)
    assert body["stop_sequences"] == ["END"] and body["stream"] is True


def test_it_leaves_safety_mode_out_when_the_setting_is_none_and_sends_it_otherwise():
    assert "safety_mode" not in upstream_body(chat())
    with override_settings(COHERE_SAFETY_SETTING="STRICT"):
        assert upstream_body(chat())["safety_mode"] == "STRICT"


@pytest.mark.parametrize(
    "body",
    [
        chat(tools=[{"type": "function", "function": {"name": "now"}}]),
        chat(messages=[HI, {"role": "tool", "tool_call_id": "c", "content": "21C"}]),
        chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": "https://x.example/a.png"}]}]),
        chat(messages=[{"role": "system", "content": "no user turn"}]),
    ],
)
def test_it_refuses_what_cohere_v1_cannot_take_with_a_400(body):
    with pytest.raises(RelayError) as raised:
        upstream_body(body)
    assert raised.value.status == 400


# --- response conversion ---


def test_it_converts_a_response_with_billed_units_as_usage():
    answer, usage, text = ADAPTOR.convert_response(
        chat_request(chat()), orjson.dumps(fake.response(chat(), Behaviour()))
    )
    body = orjson.loads(answer)
    assert body["choices"][0]["message"]["content"] == fake.REPLY
    assert body["choices"][0]["finish_reason"] == "stop"
    assert usage == Usage(fake.INPUT_TOKENS, fake.OUTPUT_TOKENS)  # billed units, not meta.tokens
    assert text == fake.REPLY


@pytest.mark.parametrize(
    ("cohere", "openai"),
    [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"), ("ERROR_TOXIC", "content_filter")],
)
def test_it_maps_finish_reasons(cohere, openai):
    content = orjson.dumps(fake.response(chat(), Behaviour(finish_reason=cohere)))
    assert (
        orjson.loads(ADAPTOR.convert_response(chat_request(chat()), content)[0])["choices"][0]["finish_reason"]
        == openai
    )


def test_it_treats_a_stream_without_stream_end_as_cut_short():
    converter = ADAPTOR.stream_converter(chat_request(chat(stream=True)))
    converter.feed(b'{"is_finished":false,"event_type":"text-generation","text":"Lis"}')
    with pytest.raises(UpstreamFailed):
        converter.finish()


# --- through the relay, against the fake Cohere ---


fake_cohere_server, fake_cohere = served(FakeCohere, "fake_cohere")


@pytest.fixture
def cohere_channel(fake_cohere: FakeCohere, transactional_db):
    return make_channel(fake_cohere.url, models=[MODEL], key=fake.API_KEY, type="cohere")


@pytest.fixture
def cohere_channel_with_bad_key(fake_cohere: FakeCohere, transactional_db):
    return make_channel(fake_cohere.url, models=[MODEL], key="co-wrong-secret", type="cohere")


def command_r_plus_quota() -> int:
    ratio, completion = DEFAULT_MODEL_RATIO_TABLE[MODEL], DEFAULT_COMPLETION_RATIO_TABLE["command-r"]
    return math.ceil(round((fake.INPUT_TOKENS + fake.OUTPUT_TOKENS * completion) * ratio, 6))


async def test_it_relays_a_chat_answer_billed_by_cohere_billed_units(alice_key, cohere_channel, fake_cohere):
    response = await post_chat(alice_key, chat())
    assert response.status_code == 200
    assert orjson.loads(response.content)["choices"][0]["message"]["content"] == fake.REPLY
    assert fake_cohere.requests[0].body["message"] == HI["content"]
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (fake.INPUT_TOKENS, fake.OUTPUT_TOKENS)
    assert log.quota == command_r_plus_quota()


async def test_it_turns_the_ndjson_event_stream_into_sse_chunks(alice_key, cohere_channel, fake_cohere):
    response = await post_chat(alice_key, chat(stream=True, stream_options={"include_usage": True}))
    payloads = await sse_payloads(response)
    assert payloads[-1] == sse.DONE
    chunks = chunks_of(payloads)
    assert all(chunk["id"] == fake.GENERATION_ID for chunk in chunks)
    assert assembled_text(chunks) == fake.REPLY
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1]["usage"]["prompt_tokens"] == fake.INPUT_TOKENS
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (
        fake.INPUT_TOKENS,
        fake.OUTPUT_TOKENS,
        command_r_plus_quota(),
    )


async def test_it_bills_a_stream_cut_before_stream_end_by_what_was_delivered(alice_key, cohere_channel, fake_cohere):
    fake_cohere.script.append(Behaviour(cut_after=1))
    response = await post_chat(alice_key, chat(stream=True))
    chunks = chunks_of(await sse_payloads(response))
    assert assembled_text(chunks) == fake.REPLY_PIECES[0]
    assert "stream-end" in chunks[-1]["error"]["message"]
    log = await consume_log(response["X-Request-Id"])
    assert log.content.startswith("upstream failed mid-stream")


async def test_it_returns_coheres_error_message_without_leaking_the_key(
    alice_key, cohere_channel_with_bad_key, fake_cohere
):
    response = await post_chat(alice_key, chat())
    assert response.status_code == 401
    assert orjson.loads(response.content)["error"]["message"] == fake.INVALID_TOKEN["message"]
    assert b"co-wrong-secret" not in response.content
    failure = await Log.objects.aget(request_id=response["X-Request-Id"], type=Log.Type.ERROR)
    assert "co-wrong-secret" not in failure.content
