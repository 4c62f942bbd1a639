"""An upstream that answers a stream request with one whole JSON body (LiteLLM's proxy does on its Anthropic
route for mocked models) is relayed to the client as a well-formed stream and billed by the answer's usage,
for every adaptor: the answer's chunks, the usage chunk if the client asked for one, then `[DONE]`."""

import json

import openai
import pytest
from aiohttp import web

from relay.streaming import WHOLE_ANSWER
from relay.tokenizer import count_text
from tests.support.factories import make_channel, make_key
from tests.support.fakes import anthropic_upstream
from tests.support.fakes.anthropic_upstream import FakeAnthropic
from tests.support.fakes.openai_upstream import (
    CACHED_TOKENS,
    PROMPT_TOKENS,
    REASONING_TOKENS,
    REPLY,
    Behaviour,
    completion,
    usage_object,
)
from tests.support.fakes.recording import served
from tests.support.fakes.server import serve
from tests.support.live_server import LiveGateway, consume_logs
from tests.support.relay_client import (
    HELLO,
    assembled_text,
    assembled_tool_calls,
    chunks_of,
    consume_log,
    finish_reasons,
    post_chat,
    sse_payloads,
)

pytestmark = pytest.mark.django_db(transaction=True)

fake_anthropic_server, fake_anthropic = served(FakeAnthropic, "fake_anthropic")
CLAUDE = "claude-3-5-sonnet-20241022"
STREAM = {**HELLO, "stream": True}
TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup_weather", "arguments": '{"city": "Lisbon"}'},
}


def whole_answer(**fields) -> dict:
    """What the fake OpenAI upstream answers when the request is not a stream."""
    return {**completion(HELLO, Behaviour()), **fields}


async def relayed(key: str, body: dict) -> tuple[list[dict], str]:
    response = await post_chat(key, body)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/event-stream"
    payloads = await sse_payloads(response)
    assert payloads[-1] == b"[DONE]"
    return chunks_of(payloads), response["X-Request-Id"]


async def test_an_openai_answer_as_one_json_body_reaches_the_client_as_a_stream_billed_by_its_usage(
    alice_key, openai_channel, fake_openai
):
    fake_openai.script.append(Behaviour(body=whole_answer()))
    chunks, request_id = await relayed(alice_key, STREAM)
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert assembled_text(chunks) == REPLY
    assert finish_reasons(chunks) == ["stop"]
    assert {chunk["model"] for chunk in chunks} == {"gpt-4o"}
    log = await consume_log(request_id)
    assert log.content.startswith(f"{WHOLE_ANSWER}: usage reported by upstream")
    assert (log.prompt_tokens, log.completion_tokens) == (PROMPT_TOKENS, 6)
    assert log.is_stream


async def test_the_usage_chunk_the_client_asked_for_follows_the_answer(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(Behaviour(body=whole_answer()))
    chunks, _ = await relayed(alice_key, {**STREAM, "stream_options": {"include_usage": True}})
    *answer, usage = chunks
    assert all(chunk["usage"] is None for chunk in answer)
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert usage["usage"]["completion_tokens"] == 6


async def test_the_usage_chunk_and_the_log_keep_the_answers_cache_split(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(Behaviour(body=whole_answer(usage=usage_object(Behaviour(cached=True)))))
    chunks, request_id = await relayed(alice_key, {**STREAM, "stream_options": {"include_usage": True}})
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": CACHED_TOKENS}
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": REASONING_TOKENS}
    log = await consume_log(request_id)
    assert (log.prompt_tokens, log.cache_read_tokens, log.reasoning_tokens) == (
        PROMPT_TOKENS,
        CACHED_TOKENS,
        REASONING_TOKENS,
    )


async def test_an_answer_without_usage_is_counted_locally(alice_key, openai_channel, fake_openai):
    answer = whole_answer()
    del answer["usage"]
    fake_openai.script.append(Behaviour(body=answer))
    chunks, request_id = await relayed(alice_key, STREAM)
    log = await consume_log(request_id)
    assert log.content.startswith(f"{WHOLE_ANSWER}: usage counted locally")
    assert log.completion_tokens == count_text("gpt-4o", assembled_text(chunks)) > 0


async def test_tool_calls_arrive_numbered_as_stream_deltas_number_them(alice_key, openai_channel, fake_openai):
    message = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
    fake_openai.script.append(Behaviour(body=whole_answer(choices=[choice])))
    chunks, _ = await relayed(alice_key, STREAM)
    assert assembled_tool_calls(chunks) == {
        0: {"id": "call_1", "name": "lookup_weather", "arguments": '{"city": "Lisbon"}'}
    }
    assert finish_reasons(chunks) == ["tool_calls"]


async def test_a_legacy_completion_arrives_as_text_completion_chunks(alice_key, openai_channel, fake_openai):
    fake_openai.script.append(Behaviour(body=completion({"prompt": "hi", "model": "gpt-4o"}, Behaviour())))
    response = await post_chat(alice_key, {"model": "gpt-4o", "prompt": "hi", "stream": True}, path="/v1/completions")
    chunks = chunks_of(await sse_payloads(response))
    assert {chunk["object"] for chunk in chunks} == {"text_completion"}
    assert "".join(choice["text"] for chunk in chunks for choice in chunk["choices"]) == REPLY


@pytest.fixture
def claude_key(alice, fake_anthropic) -> str:
    make_channel(fake_anthropic.url, [CLAUDE], anthropic_upstream.API_KEY, type="anthropic")
    return make_key(alice)[1]


async def test_an_anthropic_message_as_one_json_body_reaches_the_client_as_a_stream(claude_key, fake_anthropic):
    message = anthropic_upstream.message({"model": CLAUDE}, anthropic_upstream.Behaviour())
    fake_anthropic.script.append(anthropic_upstream.Behaviour(body=message))
    chunks, request_id = await relayed(claude_key, {**STREAM, "model": CLAUDE})
    assert assembled_text(chunks) == anthropic_upstream.REPLY
    assert finish_reasons(chunks) == ["stop"]
    log = await consume_log(request_id)
    assert log.content.startswith(f"{WHOLE_ANSWER}: usage reported by upstream")
    assert (log.prompt_tokens, log.completion_tokens) == (
        anthropic_upstream.PROMPT_TOKENS,
        anthropic_upstream.OUTPUT_TOKENS,
    )


@pytest.fixture(scope="module")
def mislabelled_anthropic() -> str:
    """An Anthropic-type upstream that answers a stream request with one JSON message labelled as a stream."""

    async def answer(request: web.Request) -> web.Response:
        message = anthropic_upstream.message(await request.json(), anthropic_upstream.Behaviour())
        return web.Response(body=json.dumps(message), content_type="text/event-stream")

    port = serve(lambda app: app.router.add_post("/v1/messages", answer))
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def mislabelled_key(alice, mislabelled_anthropic) -> str:
    make_channel(mislabelled_anthropic, [CLAUDE], type="anthropic")
    return make_key(alice)[1]


async def test_a_json_message_labelled_as_a_stream_is_still_an_answer(mislabelled_key):
    chunks, request_id = await relayed(mislabelled_key, {**STREAM, "model": CLAUDE})
    assert assembled_text(chunks) == anthropic_upstream.REPLY
    assert not any("error" in chunk for chunk in chunks)  # not "anthropic stream ended before message_stop"
    log = await consume_log(request_id)
    assert log.content.startswith(WHOLE_ANSWER)


@pytest.mark.backend
def test_the_openai_sdk_streams_an_answer_that_came_as_one_json_body(alice, fake_openai):
    make_channel(fake_openai.url)
    key = make_key(alice)[1]
    fake_openai.script.append(Behaviour(body=whole_answer()))
    gateway = LiveGateway()
    try:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        stream = client.chat.completions.create(model="gpt-4o", messages=HELLO["messages"], stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        [log] = consume_logs(1)
    finally:
        gateway.stop()
    assert text == REPLY
    assert log.content.startswith(WHOLE_ANSWER)
    assert log.completion_tokens == 6
