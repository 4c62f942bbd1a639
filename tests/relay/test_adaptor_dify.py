"""Dify channels: OpenAI chat -> an app's chat-messages API, its event stream with and without
DIFY_DEBUG, and the relay against a fake Dify."""

import math

import orjson
import pytest
from django.test import override_settings

from billing.pricing import DEFAULT_MODEL_RATIO
from channels_app.routing import ChannelInfo
from relay import sse
from relay.adaptors.dify import DifyAdaptor
from relay.errors import RelayError
from tests.support.factories import make_channel
from tests.support.fakes import dify_upstream as fake
from tests.support.fakes.dify_upstream import FakeDify
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

MODEL = "dify-support-bot"
HI = {"role": "user", "content": "Which city?"}
ADAPTOR = DifyAdaptor()
DEBUG_LINES = ["Workflow: wf-9\n", "Node: llm\n", "Node: llm succeeded\n", "Workflow: wf-9 succeeded\n"]


def chat(**fields) -> dict:
    return {"model": MODEL, "messages": [HI], **fields}


def channel_info(**fields) -> ChannelInfo:
    fields.setdefault("base_url", "")
    return ChannelInfo(id=1, name="dify", type="dify", key=fake.APP_KEY, priority=0, weight=1, **fields)


def upstream_body(body: dict) -> dict:
    return orjson.loads(ADAPTOR.build_request(chat_request(body), channel_info()).content)


def reasoning_lines(chunks: list[dict]) -> list[str]:
    deltas = [choice["delta"] for chunk in chunks for choice in chunk.get("choices") or ()]
    return [delta["reasoning_content"] for delta in deltas if "reasoning_content" in delta]


# --- request mapping ---


def test_it_posts_a_lone_user_message_as_the_query_to_the_apps_chat_messages():
    outgoing = ADAPTOR.build_request(chat_request(chat()), channel_info())
    assert outgoing.url == "https://api.dify.ai/v1/chat-messages"
    assert outgoing.headers["Authorization"] == f"Bearer {fake.APP_KEY}"
    assert orjson.loads(outgoing.content) == {
        "inputs": {},
        "query": "Which city?",
        "response_mode": "blocking",
        "user": "api-user",
        "auto_generate_name": False,
    }
    streamed = upstream_body(chat(stream=True, user="u-42"))
    assert (streamed["response_mode"], streamed["user"]) == ("streaming", "u-42")


def test_it_folds_earlier_turns_into_the_query_as_a_transcript():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I am in Portugal."},
        {"role": "assistant", "content": "Nice."},
        HI,
    ]
    assert upstream_body(chat(messages=messages))["query"] == (
        "SYSTEM: \nBe brief.\nUSER: \nI am in Portugal.\nASSISTANT: \nNice.\nUSER: \nWhich city?\n"
    )


def test_it_sends_http_images_of_the_query_as_remote_files_and_refuses_inline_ones():
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": "https://x.example/a.png"}]
    body = upstream_body(chat(messages=[{"role": "user", "content": content}]))
    assert body["query"] == "What is this?"
    assert body["files"] == [{"type": "image", "transfer_method": "remote_url", "url": "https://x.example/a.png"}]
    inline = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    with pytest.raises(RelayError) as raised:
        upstream_body(chat(messages=[{"role": "user", "content": inline}]))
    assert raised.value.status == 400


def test_it_reads_difys_error_shape():
    failure = ADAPTOR.parse_error(400, orjson.dumps({**fake.QUOTA_ERROR, "status": 400}))
    assert (failure.status, failure.message, failure.code) == (
        400,
        fake.QUOTA_ERROR["message"],
        "provider_quota_exceeded",
    )


# --- through the relay, against the fake Dify ---


fake_dify_server, fake_dify = served(FakeDify, "fake_dify")


@pytest.fixture
def dify_channel(fake_dify: FakeDify, transactional_db):
    return make_channel(fake_dify.url, models=[MODEL], key=fake.APP_KEY, type="dify")


@pytest.fixture
def dify_channel_with_bad_key(fake_dify: FakeDify, transactional_db):
    return make_channel(fake_dify.url, models=[MODEL], key="app-wrongKey", type="dify")


DIFY_QUOTA = math.ceil((fake.PROMPT_TOKENS + fake.COMPLETION_TOKENS) * DEFAULT_MODEL_RATIO)  # a label, not priced


async def test_it_relays_a_blocking_answer_billed_by_difys_usage(alice_key, dify_channel, fake_dify):
    response = await post_chat(alice_key, chat())
    assert response.status_code == 200
    body = orjson.loads(response.content)
    assert body["id"] == fake.MESSAGE_ID
    assert body["choices"][0]["message"] == {"role": "assistant", "content": fake.ANSWER}
    assert body["usage"]["prompt_tokens"] == fake.PROMPT_TOKENS
    assert fake_dify.requests[0].path == "/v1/chat-messages"
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (
        fake.PROMPT_TOKENS,
        fake.COMPLETION_TOKENS,
        DIFY_QUOTA,
    )


async def test_with_dify_debug_it_streams_workflow_and_node_progress_as_reasoning_lines(
    alice_key, dify_channel, fake_dify
):
    with override_settings(DIFY_DEBUG=True):
        response = await post_chat(alice_key, chat(stream=True, stream_options={"include_usage": True}))
        payloads = await sse_payloads(response)
    assert payloads[-1] == sse.DONE
    chunks = chunks_of(payloads)
    assert reasoning_lines(chunks) == DEBUG_LINES
    assert assembled_text(chunks) == fake.ANSWER  # the answer text stays clean
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1]["usage"]["completion_tokens"] == fake.COMPLETION_TOKENS
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (
        fake.PROMPT_TOKENS,
        fake.COMPLETION_TOKENS,
        DIFY_QUOTA,
    )


async def test_without_dify_debug_it_streams_only_the_answer(alice_key, dify_channel, fake_dify):
    with override_settings(DIFY_DEBUG=False):
        response = await post_chat(alice_key, chat(stream=True))
        chunks = chunks_of(await sse_payloads(response))
    assert reasoning_lines(chunks) == []
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": fake.ANSWER_PIECES[0]}
    assert assembled_text(chunks) == fake.ANSWER
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (fake.PROMPT_TOKENS, fake.COMPLETION_TOKENS)


async def test_it_counts_locally_when_dify_reports_no_usage(alice_key, dify_channel, fake_dify):
    fake_dify.script.append(Behaviour(usage=False))
    response = await post_chat(alice_key, chat(stream=True))
    await sse_payloads(response)
    log = await consume_log(response["X-Request-Id"])
    assert log.content.startswith("stream ended normally, no usage from upstream: counted locally")
    assert log.prompt_tokens > 0 and log.completion_tokens > 0


async def test_an_error_event_before_any_output_is_an_http_error(alice_key, dify_channel, fake_dify):
    fake_dify.script.append(Behaviour(error_after=0))
    with override_settings(DIFY_DEBUG=False):
        response = await post_chat(alice_key, chat(stream=True))
    assert response.status_code == 400
    assert orjson.loads(response.content)["error"]["message"] == fake.QUOTA_ERROR["message"]


async def test_an_error_event_mid_stream_ends_the_stream_with_difys_message(alice_key, dify_channel, fake_dify):
    fake_dify.script.append(Behaviour(error_after=1))
    response = await post_chat(alice_key, chat(stream=True))
    chunks = chunks_of(await sse_payloads(response))
    assert assembled_text(chunks) == fake.ANSWER_PIECES[0]
    assert chunks[-1]["error"]["message"] == fake.QUOTA_ERROR["message"]
    log = await consume_log(response["X-Request-Id"])
    assert log.content.startswith("upstream failed mid-stream")


async def test_it_returns_difys_error_without_leaking_the_app_key(alice_key, dify_channel_with_bad_key, fake_dify):
    response = await post_chat(alice_key, chat())
    assert response.status_code == 401
    assert orjson.loads(response.content)["error"]["message"] == fake.INVALID_KEY["message"]
    assert b"app-wrongKey" not in response.content
