"""Ollama channels: OpenAI chat and embeddings <-> Ollama's native API, NDJSON streams, and the relay
against a fake Ollama (in process, and end to end through the real server with the official SDK)."""

import base64
import math
import struct

import openai
import orjson
import pytest
from django.test import AsyncClient

from billing.models import Log
from billing.pricing import DEFAULT_MODEL_RATIO
from channels_app.routing import ChannelInfo
from relay import sse
from relay.adaptors.ollama import OllamaAdaptor
from relay.errors import RelayError
from tests.support.factories import make_channel, make_key
from tests.support.fakes import ollama_upstream as fake
from tests.support.fakes.ollama_upstream import FakeOllama
from tests.support.fakes.recording import Behaviour, served
from tests.support.live_server import LiveGateway
from tests.support.relay_client import (
    assembled_text,
    assembled_tool_calls,
    chat_request,
    chunks_of,
    consume_log,
    finish_reasons,
    post_chat,
    sse_payloads,
)

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = fake.MODEL
EMBED_MODEL = "nomic-embed-text"
HI = {"role": "user", "content": "hi"}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
ADAPTOR = OllamaAdaptor()


def chat(**fields) -> dict:
    return {"model": MODEL, "messages": [HI], **fields}


def channel_info(**fields) -> ChannelInfo:
    fields.setdefault("base_url", "")
    fields.setdefault("key", "anything")
    return ChannelInfo(id=1, name="local", type="ollama", priority=0, weight=1, **fields)


def upstream_body(body: dict) -> dict:
    return orjson.loads(ADAPTOR.build_request(chat_request(body), channel_info()).content)


def embeddings_request(body: dict):
    request = chat_request({"model": EMBED_MODEL, "messages": [], **body})
    request.endpoint, request.body = "embeddings", body
    return request


def quota(prompt: int, completion: int) -> int:
    return math.ceil(round((prompt + completion) * DEFAULT_MODEL_RATIO, 6))  # local models: not in the table


# --- request mapping ---


def test_it_posts_to_the_native_chat_api_on_localhost_by_default_and_passes_any_key_as_bearer():
    outgoing = ADAPTOR.build_request(chat_request(chat()), channel_info())
    assert outgoing.url == "http://localhost:11434/api/chat"
    assert outgoing.headers["Authorization"] == "Bearer anything"
    keyless = ADAPTOR.build_request(chat_request(chat()), channel_info(key="", base_url="http://gpu-box:11434/v1"))
    assert keyless.url == "http://gpu-box:11434/api/chat"
    assert "Authorization" not in keyless.headers


def test_it_always_says_whether_to_stream_because_ollama_streams_by_default():
    assert upstream_body(chat())["stream"] is False
    assert upstream_body(chat(stream=True))["stream"] is True


def test_it_moves_sampling_fields_into_options():
    body = upstream_body(chat(temperature=0.2, top_p=0.9, seed=7, max_tokens=64, stop="END", presence_penalty=0.5))
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "presence_penalty": 0.5,
        "num_predict": 64,
        "stop": ["END"],
    }
    assert "options" not in upstream_body(chat())


def test_it_asks_for_json_output_when_the_client_wants_a_json_object_or_schema():
    assert upstream_body(chat(response_format={"type": "json_object"}))["format"] == "json"
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    wanted = {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}
    assert upstream_body(chat(response_format=wanted))["format"] == schema


def test_it_sends_data_url_images_as_raw_base64_beside_the_text():
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    message = upstream_body(chat(messages=[{"role": "user", "content": content}]))["messages"][0]
    assert message == {"role": "user", "content": "What is this?", "images": [PNG]}


def test_it_refuses_http_image_urls_it_cannot_download_with_a_400():
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    with pytest.raises(RelayError) as raised:
        upstream_body(chat(messages=[{"role": "user", "content": content}]))
    assert raised.value.status == 400


def test_it_sends_tool_call_arguments_as_objects():
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup_weather", "arguments": '{"city":"Lisbon"}'},
    }
    messages = [
        HI,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
    ]
    sent = upstream_body(chat(messages=messages))["messages"]
    assert sent[1]["tool_calls"] == [{"function": {"name": "lookup_weather", "arguments": {"city": "Lisbon"}}}]
    assert sent[2] == {"role": "tool", "content": "21C"}


def test_it_embeds_on_api_embed_and_answers_one_item_per_input_in_the_asked_encoding():
    request = embeddings_request({"model": EMBED_MODEL, "input": ["a", "b"], "encoding_format": "base64"})
    outgoing = ADAPTOR.build_request(request, channel_info())
    assert outgoing.url == "http://localhost:11434/api/embed"
    assert orjson.loads(outgoing.content) == {"model": EMBED_MODEL, "input": ["a", "b"]}
    answer = {"model": EMBED_MODEL, "embeddings": [fake.vector(0), fake.vector(1)], "prompt_eval_count": 4}
    body, usage, _ = ADAPTOR.convert_response(request, orjson.dumps(answer))
    data = orjson.loads(body)["data"]
    assert [item["index"] for item in data] == [0, 1]
    assert list(struct.unpack("<2f", base64.b64decode(data[1]["embedding"]))) == fake.vector(1)
    assert usage.prompt_tokens == 4


def test_it_refuses_token_array_embedding_input():
    with pytest.raises(RelayError):
        ADAPTOR.build_request(embeddings_request({"model": EMBED_MODEL, "input": [[1, 2]]}), channel_info())


def test_it_converts_a_tool_call_answer_with_string_arguments():
    content = orjson.dumps(fake.final(chat(), Behaviour(tool_call=True), ""))
    answer, usage, _ = ADAPTOR.convert_response(chat_request(chat()), content)
    choice = orjson.loads(answer)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {
        "name": "lookup_weather",
        "arguments": '{"city":"Lisbon"}',
    }
    assert (usage.prompt_tokens, usage.completion_tokens) == (fake.PROMPT_EVAL_COUNT, fake.EVAL_COUNT)


# --- through the relay, against the fake Ollama ---


fake_ollama_server, fake_ollama = served(FakeOllama, "fake_ollama")


@pytest.fixture
def ollama_channel(fake_ollama: FakeOllama, transactional_db):
    return make_channel(fake_ollama.url, models=[MODEL, EMBED_MODEL], key="whatever", type="ollama")


async def test_it_relays_a_chat_answer_billed_by_ollamas_eval_counts(alice_key, ollama_channel, fake_ollama):
    response = await post_chat(alice_key, chat(max_tokens=50))
    assert response.status_code == 200
    body = orjson.loads(response.content)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": fake.REPLY}
    assert body["usage"]["prompt_tokens"] == fake.PROMPT_EVAL_COUNT
    assert fake_ollama.requests[0].body["options"] == {"num_predict": 50}
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (fake.PROMPT_EVAL_COUNT, fake.EVAL_COUNT)
    assert log.quota == quota(fake.PROMPT_EVAL_COUNT, fake.EVAL_COUNT)


async def test_it_turns_the_ndjson_stream_into_sse_chunks_with_usage(alice_key, ollama_channel, fake_ollama):
    response = await post_chat(alice_key, chat(stream=True, stream_options={"include_usage": True}))
    assert response["Content-Type"] == "text/event-stream"
    payloads = await sse_payloads(response)
    assert payloads[-1] == sse.DONE
    chunks = chunks_of(payloads)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": fake.REPLY_PIECES[0]}
    assert assembled_text(chunks) == fake.REPLY
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1]["usage"] == {
        "prompt_tokens": fake.PROMPT_EVAL_COUNT,
        "completion_tokens": fake.EVAL_COUNT,
        "total_tokens": fake.PROMPT_EVAL_COUNT + fake.EVAL_COUNT,
    }
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (fake.PROMPT_EVAL_COUNT, fake.EVAL_COUNT, True)
    assert log.content.startswith("stream ended normally;")


async def test_it_streams_a_tool_call(alice_key, ollama_channel, fake_ollama):
    fake_ollama.script.append(Behaviour(tool_call=True))
    response = await post_chat(alice_key, chat(stream=True))
    chunks = chunks_of(await sse_payloads(response))
    call = assembled_tool_calls(chunks)[0]
    assert (call["name"], call["arguments"]) == ("lookup_weather", '{"city":"Lisbon"}')
    assert finish_reasons(chunks) == ["tool_calls"]


async def test_it_ends_with_an_error_event_and_bills_what_was_delivered_when_ollama_fails_mid_stream(
    alice_key, ollama_channel, fake_ollama
):
    fake_ollama.script.append(Behaviour(error_after=2))
    response = await post_chat(alice_key, chat(stream=True))
    chunks = chunks_of(await sse_payloads(response))
    assert assembled_text(chunks) == "".join(fake.REPLY_PIECES[:2])
    assert chunks[-1]["error"]["message"] == "an error was encountered while running the model"
    log = await consume_log(response["X-Request-Id"])
    assert log.content.startswith("upstream failed mid-stream")
    assert log.completion_tokens > 0


async def test_it_treats_a_stream_closed_before_the_done_line_as_cut_short(alice_key, ollama_channel, fake_ollama):
    fake_ollama.script.append(Behaviour(cut_after=1))
    response = await post_chat(alice_key, chat(stream=True))
    chunks = chunks_of(await sse_payloads(response))
    assert "done line" in chunks[-1]["error"]["message"]


async def test_it_returns_ollamas_error_in_openai_shape(alice_key, ollama_channel, fake_ollama):
    fake_ollama.script.append(Behaviour(status=404, body=fake.NOT_FOUND))
    response = await post_chat(alice_key, chat())
    assert response.status_code == 404
    assert orjson.loads(response.content)["error"]["message"] == fake.NOT_FOUND["error"]
    assert b"whatever" not in response.content


async def test_it_relays_embeddings_one_item_per_input(alice_key, ollama_channel, fake_ollama):
    response = await AsyncClient().post(
        "/v1/embeddings",
        {"model": EMBED_MODEL, "input": ["first", "second"]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {alice_key}"},
    )
    body = orjson.loads(response.content)
    assert [item["embedding"] for item in body["data"]] == [fake.vector(0), fake.vector(1)]
    assert fake_ollama.requests[0].path == "/api/embed"
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (fake.EMBED_PROMPT_COUNT, 0)


# --- end to end: the real server and the official SDK ---


@pytest.fixture
def sdk(alice, fake_ollama):
    make_channel(fake_ollama.url, models=[MODEL, EMBED_MODEL], key="ignored", type="ollama")
    _, key = make_key(alice)
    server = LiveGateway()
    yield openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    server.stop()


def test_the_openai_sdk_chats_streams_and_embeds_through_an_ollama_channel(sdk, fake_ollama):
    answer = sdk.chat.completions.create(model=MODEL, messages=[HI])
    assert answer.choices[0].message.content == fake.REPLY
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (fake.PROMPT_EVAL_COUNT, fake.EVAL_COUNT)
    pieces = list(
        sdk.chat.completions.create(model=MODEL, messages=[HI], stream=True, stream_options={"include_usage": True})
    )
    assert "".join(p.choices[0].delta.content or "" for p in pieces if p.choices) == fake.REPLY
    assert pieces[-1].usage.completion_tokens == fake.EVAL_COUNT
    vectors = sdk.embeddings.create(model=EMBED_MODEL, input=["a", "b"])
    assert [item.embedding for item in vectors.data] == [fake.vector(0), fake.vector(1)]  # via base64 float32
    logs = Log.objects.filter(type=Log.Type.CONSUME, model=MODEL)
    assert logs.count() == 2 and all(log.prompt_tokens == fake.PROMPT_EVAL_COUNT for log in logs)
