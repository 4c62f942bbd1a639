"""Anthropic channels: OpenAI chat <-> Anthropic Messages conversion, and the relay against a fake Anthropic."""

import orjson
import pytest

from billing.models import Log
from channels_app.routing import ChannelInfo
from relay import sse
from relay.adaptors.anthropic import DEFAULT_MAX_TOKENS, LEGACY_MAX_TOKENS, AnthropicAdaptor, AnthropicStream
from relay.adaptors.base import UpstreamFailed, Usage
from relay.errors import RelayError
from tests.support.factories import make_channel
from tests.support.fakes import anthropic_upstream as fake
from tests.support.fakes.anthropic_upstream import Behaviour, FakeAnthropic
from tests.support.fakes.recording import served
from tests.support.relay_client import (
    WEATHER_TOOL,
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

MODEL = "claude-3-5-sonnet-20241022"
HI = {"role": "user", "content": "hi"}
PNG = "iVBORw0KGgoAAAANSUhEUg=="
ADAPTOR = AnthropicAdaptor()


def chat(**fields) -> dict:
    return {"model": MODEL, "messages": [HI], **fields}


def channel_info(**fields) -> ChannelInfo:
    fields.setdefault("base_url", "")
    return ChannelInfo(id=1, name="claude", type="anthropic", key=fake.API_KEY, priority=0, weight=1, **fields)


def upstream_body(body: dict, **channel_fields) -> dict:
    return orjson.loads(ADAPTOR.build_request(chat_request(body), channel_info(**channel_fields)).content)


def event_payloads(behaviour: Behaviour, body: dict | None = None) -> list[bytes]:
    return [orjson.dumps(data) for _, data in fake.stream_events(body or chat(), behaviour)]


def convert_stream(body: dict, payloads: list[bytes]) -> tuple[AnthropicStream, list[dict]]:
    converter = ADAPTOR.stream_converter(chat_request(body))
    out = [chunk for payload in payloads for chunk in converter.feed(payload)]
    out += converter.finish()
    return converter, [orjson.loads(chunk) for chunk in out]


# --- request mapping ---


def test_it_posts_to_v1_messages_with_the_anthropic_headers_and_the_mapped_model():
    outgoing = ADAPTOR.build_request(chat_request(chat()), channel_info(model_mapping={MODEL: "claude-up"}))
    assert outgoing.url == "https://api.anthropic.com/v1/messages"
    assert outgoing.headers["x-api-key"] == fake.API_KEY
    assert outgoing.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in outgoing.headers
    assert orjson.loads(outgoing.content)["model"] == "claude-up"


def test_it_does_not_double_v1_when_the_base_url_already_ends_with_it():
    outgoing = ADAPTOR.build_request(chat_request(chat()), channel_info(base_url="https://proxy.example/v1"))
    assert outgoing.url == "https://proxy.example/v1/messages"


def test_it_moves_system_and_developer_messages_to_the_top_level_system():
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
        {"role": "user", "content": "hi"},
    ]
    body = upstream_body(chat(messages=messages))
    assert body["system"] == "Answer briefly.\nUse metric units."
    assert [turn["role"] for turn in body["messages"]] == ["user"]


def test_it_merges_consecutive_messages_of_the_same_role():
    messages = [
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "three"},
    ]
    body = upstream_body(chat(messages=messages))
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "three"}]},
    ]


def test_it_opens_with_a_placeholder_user_turn_when_the_conversation_starts_with_the_assistant():
    body = upstream_body(chat(messages=[{"role": "assistant", "content": "Hello"}, {"role": "user", "content": ""}]))
    assert body["messages"][0] == {"role": "user", "content": [{"type": "text", "text": "..."}]}
    assert body["messages"][2] == {"role": "user", "content": [{"type": "text", "text": "..."}]}


def test_it_fills_max_tokens_when_the_client_sends_none():
    assert upstream_body(chat())["max_tokens"] == DEFAULT_MAX_TOKENS
    assert upstream_body(chat(model="claude-3-haiku-20240307"))["max_tokens"] == LEGACY_MAX_TOKENS
    assert upstream_body(chat(max_tokens=300))["max_tokens"] == 300
    assert upstream_body(chat(max_completion_tokens=200))["max_tokens"] == 200


def test_it_sends_data_url_images_as_base64_and_http_images_as_url_sources():
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}},
        {"type": "image_url", "image_url": "https://example.com/cat.jpg"},
    ]
    blocks = upstream_body(chat(messages=[{"role": "user", "content": content}]))["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}


@pytest.mark.parametrize("url", ["ftp://example.com/cat.jpg", "data:image/png,not-base64"])
def test_it_rejects_images_it_cannot_send_with_a_400(url):
    content = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(RelayError) as raised:
        upstream_body(chat(messages=[{"role": "user", "content": content}]))
    assert raised.value.status == 400


def test_it_maps_stop_temperature_top_p_and_user():
    body = upstream_body(chat(stop="END", temperature=1.7, top_p=0.9, user="u-42"))
    assert body["stop_sequences"] == ["END"]
    assert body["temperature"] == 1.0  # Anthropic's range ends at 1
    assert body["top_p"] == 0.9
    assert body["metadata"] == {"user_id": "u-42"}
    assert upstream_body(chat(stop=["a", "b"]))["stop_sequences"] == ["a", "b"]


def test_it_converts_tools_to_input_schema():
    no_parameters = {"type": "function", "function": {"name": "now"}}
    body = upstream_body(chat(tools=[WEATHER_TOOL, no_parameters]))
    assert body["tools"] == [
        {
            "name": "lookup_weather",
            "description": "Current weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "lookup_weather"}}, {"type": "tool", "name": "lookup_weather"}),
    ],
)
def test_it_maps_tool_choice(tool_choice, expected):
    assert upstream_body(chat(tools=[WEATHER_TOOL], tool_choice=tool_choice))["tool_choice"] == expected


def test_it_disables_parallel_tool_use_when_the_client_asks():
    body = upstream_body(chat(tools=[WEATHER_TOOL], parallel_tool_calls=False))
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_it_turns_assistant_tool_calls_and_tool_results_into_tool_use_and_tool_result_blocks():
    call = {
        "id": "toolu_01A",
        "type": "function",
        "function": {"name": "lookup_weather", "arguments": '{"city":"Lisbon"}'},
    }
    other = {"id": "toolu_01B", "type": "function", "function": {"name": "lookup_weather", "arguments": "not json"}}
    messages = [
        {"role": "user", "content": "Weather in Lisbon and Porto?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [call, other]},
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "21C"},
        {"role": "tool", "tool_call_id": "toolu_01B", "content": "18C"},
        {"role": "user", "content": "Thanks"},
    ]
    turns = upstream_body(chat(messages=messages))["messages"]
    assert turns[1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01A", "name": "lookup_weather", "input": {"city": "Lisbon"}},
            {"type": "tool_use", "id": "toolu_01B", "name": "lookup_weather", "input": {}},
        ],
    }
    assert turns[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "21C"},
            {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "18C"},
            {"type": "text", "text": "Thanks"},
        ],
    }
    assert len(turns) == 3


def test_it_drops_stream_options_and_passes_the_stream_flag():
    body = upstream_body(chat(stream=True, stream_options={"include_usage": True}))
    assert body["stream"] is True
    assert "stream_options" not in body


# --- response conversion ---


def test_it_converts_a_message_with_text_and_tool_use():
    content = orjson.dumps(fake.message(chat(), Behaviour(tool_call=True)))
    answer, usage, text = ADAPTOR.convert_response(chat_request(chat()), content)
    body = orjson.loads(answer)
    assert body["object"] == "chat.completion"
    assert body["model"] == MODEL
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == fake.TOOL_TEXT
    assert choice["message"]["tool_calls"] == [
        {
            "id": fake.TOOL_ID,
            "type": "function",
            "function": {"name": "lookup_weather", "arguments": '{"city":"Lisbon"}'},
        }
    ]
    assert usage == Usage(fake.PROMPT_TOKENS, fake.OUTPUT_TOKENS, cache_read_tokens=fake.CACHE_READ_TOKENS)
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": fake.CACHE_READ_TOKENS}
    assert text.startswith(fake.TOOL_TEXT) and "lookup_weather" in text


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_it_maps_stop_reasons_to_finish_reasons(stop_reason, finish_reason):
    message = {**fake.message(chat(), Behaviour()), "stop_reason": stop_reason}
    answer, _, _ = ADAPTOR.convert_response(chat_request(chat()), orjson.dumps(message))
    assert orjson.loads(answer)["choices"][0]["finish_reason"] == finish_reason


def test_it_reports_no_usage_when_anthropic_counted_nothing():
    message = {**fake.message(chat(), Behaviour()), "usage": {"input_tokens": 0, "output_tokens": 0}}
    _, usage, text = ADAPTOR.convert_response(chat_request(chat()), orjson.dumps(message))
    assert usage is None
    assert text == fake.REPLY


def test_it_reads_anthropic_errors_with_the_provider_message():
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}}
    failure = ADAPTOR.parse_error(400, orjson.dumps(body))
    assert (failure.status, failure.message, failure.type, failure.code) == (
        400,
        "max_tokens: Field required",
        "invalid_request_error",
        "invalid_request_error",
    )
    assert ADAPTOR.parse_error(529, orjson.dumps(fake.OVERLOADED)).status == 503


# --- stream conversion ---


def test_it_converts_the_event_stream_to_openai_chunks():
    converter, chunks = convert_stream(chat(stream=True), event_payloads(Behaviour()))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(chunk["id"] == fake.MESSAGE_ID and chunk["model"] == MODEL for chunk in chunks)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert assembled_text(chunks) == fake.REPLY
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert not any("usage" in chunk for chunk in chunks)  # the relay adds the usage chunk itself
    assert converter.state.usage == Usage(
        fake.PROMPT_TOKENS, fake.OUTPUT_TOKENS, cache_read_tokens=fake.CACHE_READ_TOKENS
    )
    assert converter.state.chunk_id == fake.MESSAGE_ID and converter.state.created > 0
    assert converter.state.text == fake.REPLY


def test_it_marks_chunks_with_null_usage_when_the_client_wants_a_usage_chunk():
    body = chat(stream=True, stream_options={"include_usage": True})
    _, chunks = convert_stream(body, event_payloads(Behaviour()))
    assert all(chunk["usage"] is None for chunk in chunks)


def test_it_streams_tool_use_as_tool_call_fragments_indexed_from_zero():
    converter, chunks = convert_stream(chat(stream=True), event_payloads(Behaviour(tool_call=True)))
    calls = assembled_tool_calls(chunks)
    assert calls == {0: {"id": fake.TOOL_ID, "name": "lookup_weather", "arguments": '{"city": "Lisbon"}'}}
    assert assembled_text(chunks) == fake.TOOL_TEXT
    assert finish_reasons(chunks) == ["tool_calls"]
    assert converter.state.max_tool_calls == 1


def test_it_gives_a_tool_call_without_arguments_an_empty_object():
    payloads = [
        {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t1", "name": "now"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}},
        {"type": "message_stop"},
    ]
    _, chunks = convert_stream(chat(stream=True), [orjson.dumps(p) for p in payloads])
    assert assembled_tool_calls(chunks)[0]["arguments"] == "{}"


def test_it_raises_the_provider_error_when_an_error_event_arrives_mid_stream():
    converter = ADAPTOR.stream_converter(chat_request(chat(stream=True)))
    with pytest.raises(UpstreamFailed) as raised:
        for payload in event_payloads(Behaviour(error_after=1)):
            converter.feed(payload)
    assert (raised.value.failure.status, raised.value.failure.message) == (503, "Overloaded")
    assert converter.state.usage is None  # billed on the delivered text, not on a half-known usage


CACHED_PROMPT = fake.PROMPT_TOKENS + fake.CACHE_WRITE_5M_TOKENS + fake.CACHE_WRITE_1H_TOKENS
CACHED_USAGE = Usage(
    CACHED_PROMPT,
    fake.OUTPUT_TOKENS,
    cache_read_tokens=fake.CACHE_READ_TOKENS,
    cache_write_5m_tokens=fake.CACHE_WRITE_5M_TOKENS,
    cache_write_1h_tokens=fake.CACHE_WRITE_1H_TOKENS,
)


def test_it_reads_cache_reads_and_writes_split_by_lifetime():
    content = orjson.dumps(fake.message(chat(), Behaviour(cache_writes=True)))
    answer, usage, _ = ADAPTOR.convert_response(chat_request(chat()), content)
    assert usage == CACHED_USAGE
    assert usage.uncached_prompt_tokens == fake.INPUT_TOKENS
    assert orjson.loads(answer)["usage"] == {
        "prompt_tokens": CACHED_PROMPT,  # OpenAI's convention: every input token
        "completion_tokens": fake.OUTPUT_TOKENS,
        "total_tokens": CACHED_PROMPT + fake.OUTPUT_TOKENS,
        "prompt_tokens_details": {"cached_tokens": fake.CACHE_READ_TOKENS},
    }


def test_cache_writes_without_their_split_are_five_minute_writes():
    message = fake.message(chat(), Behaviour())
    message["usage"] = {"input_tokens": 4, "cache_creation_input_tokens": 100, "output_tokens": 2}
    _, usage, _ = ADAPTOR.convert_response(chat_request(chat()), orjson.dumps(message))
    assert usage == Usage(104, 2, cache_write_5m_tokens=100)


def test_a_stream_reads_the_split_from_message_start_and_message_delta():
    converter, _ = convert_stream(chat(stream=True), event_payloads(Behaviour(cache_writes=True)))
    assert converter.state.usage == CACHED_USAGE


def test_a_message_delta_count_of_zero_keeps_the_count_message_start_gave():
    start = {"input_tokens": 7, "cache_read_input_tokens": 50, "output_tokens": 1}
    payloads = [
        {"type": "message_start", "message": {"id": "msg_1", "usage": start}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"input_tokens": 0, "cache_read_input_tokens": 60, "output_tokens": 4},
        },
        {"type": "message_stop"},
    ]
    converter, _ = convert_stream(chat(stream=True), [orjson.dumps(p) for p in payloads])
    assert converter.state.usage == Usage(67, 4, cache_read_tokens=60)


def test_a_stream_cut_before_message_delta_keeps_the_input_split_of_message_start():
    converter = ADAPTOR.stream_converter(chat_request(chat(stream=True)))
    for payload in event_payloads(Behaviour(cache_writes=True, error_after=1))[:-1]:
        converter.feed(payload)
    assert converter.state.usage is None
    assert converter.state.input_usage == Usage(
        CACHED_PROMPT,
        1,
        cache_read_tokens=fake.CACHE_READ_TOKENS,
        cache_write_5m_tokens=fake.CACHE_WRITE_5M_TOKENS,
        cache_write_1h_tokens=fake.CACHE_WRITE_1H_TOKENS,
    )


def test_it_treats_a_stream_closed_before_message_stop_as_an_upstream_failure():
    converter = ADAPTOR.stream_converter(chat_request(chat(stream=True)))
    for payload in event_payloads(Behaviour())[:4]:
        converter.feed(payload)
    with pytest.raises(UpstreamFailed):
        converter.finish()


# --- through the relay, against the fake Anthropic ---


fake_anthropic_server, fake_anthropic = served(FakeAnthropic, "fake_anthropic")


@pytest.fixture
def claude_channel(fake_anthropic: FakeAnthropic, transactional_db):
    return make_channel(fake_anthropic.url, models=[MODEL], key=fake.API_KEY, type="anthropic")


@pytest.fixture
def claude_channel_with_bad_key(fake_anthropic: FakeAnthropic, transactional_db):
    return make_channel(fake_anthropic.url, models=[MODEL], key="sk-ant-wrong-secret", type="anthropic")


async def test_it_relays_a_chat_answer_and_bills_anthropic_usage(alice_key, claude_channel, fake_anthropic):
    response = await post_chat(alice_key, chat(messages=[{"role": "system", "content": "Be brief."}, HI]))
    assert response.status_code == 200
    body = orjson.loads(response.content)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": fake.REPLY}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == fake.PROMPT_TOKENS
    sent = fake_anthropic.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == fake.API_KEY
    assert sent.body["system"] == "Be brief." and sent.body["max_tokens"] == DEFAULT_MAX_TOKENS
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (fake.PROMPT_TOKENS, fake.OUTPUT_TOKENS)
    assert log.content.startswith("usage reported by upstream")


async def test_it_streams_an_answer_with_the_usage_chunk_the_client_asked_for(
    alice_key, claude_channel, fake_anthropic
):
    response = await post_chat(alice_key, chat(stream=True, stream_options={"include_usage": True}))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    payloads = await sse_payloads(response)
    assert payloads[-1] == sse.DONE
    chunks = chunks_of(payloads)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert assembled_text(chunks) == fake.REPLY
    assert finish_reasons(chunks) == ["stop"]
    usage_chunks = [chunk for chunk in chunks if chunk.get("usage")]
    assert len(usage_chunks) == 1 and usage_chunks[0]["choices"] == []
    assert usage_chunks[0]["usage"] == {
        "prompt_tokens": fake.PROMPT_TOKENS,
        "completion_tokens": fake.OUTPUT_TOKENS,
        "total_tokens": fake.PROMPT_TOKENS + fake.OUTPUT_TOKENS,
        "prompt_tokens_details": {"cached_tokens": fake.CACHE_READ_TOKENS},
    }
    assert usage_chunks[0]["id"] == chunks[0]["id"]
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (fake.PROMPT_TOKENS, fake.OUTPUT_TOKENS, True)
    assert log.content.startswith("stream ended normally")


async def test_it_streams_without_a_usage_chunk_when_the_client_did_not_ask(alice_key, claude_channel, fake_anthropic):
    response = await post_chat(alice_key, chat(stream=True))
    chunks = chunks_of(await sse_payloads(response))
    assert not any("usage" in chunk for chunk in chunks)
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (fake.PROMPT_TOKENS, fake.OUTPUT_TOKENS)


async def test_it_round_trips_a_tool_call(alice_key, claude_channel, fake_anthropic):
    fake_anthropic.script.append(Behaviour(tool_call=True))
    question = {"role": "user", "content": "Weather in Lisbon?"}
    first = await post_chat(alice_key, chat(messages=[question], tools=[WEATHER_TOOL], tool_choice="auto"))
    message = orjson.loads(first.content)["choices"][0]["message"]
    assert message["tool_calls"][0]["function"] == {"name": "lookup_weather", "arguments": '{"city":"Lisbon"}'}
    assert fake_anthropic.requests[0].body["tools"][0]["input_schema"]["required"] == ["city"]

    result = {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "21C"}
    second = await post_chat(alice_key, chat(messages=[question, message, result], tools=[WEATHER_TOOL]))
    assert orjson.loads(second.content)["choices"][0]["message"]["content"] == fake.REPLY
    turns = fake_anthropic.requests[1].body["messages"]
    assert turns[1]["content"][1] == {
        "type": "tool_use",
        "id": fake.TOOL_ID,
        "name": "lookup_weather",
        "input": {"city": "Lisbon"},
    }
    assert turns[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": fake.TOOL_ID, "content": "21C"}],
    }


async def test_it_streams_a_tool_call(alice_key, claude_channel, fake_anthropic):
    fake_anthropic.script.append(Behaviour(tool_call=True))
    response = await post_chat(alice_key, chat(stream=True, tools=[WEATHER_TOOL]))
    chunks = chunks_of(await sse_payloads(response))
    assert assembled_tool_calls(chunks) == {
        0: {"id": fake.TOOL_ID, "name": "lookup_weather", "arguments": '{"city": "Lisbon"}'}
    }
    assert finish_reasons(chunks) == ["tool_calls"]


async def test_it_returns_an_anthropic_error_in_openai_shape_without_leaking_the_key(
    alice_key, claude_channel_with_bad_key, fake_anthropic
):
    response = await post_chat(alice_key, chat())
    assert response.status_code == 401
    error = orjson.loads(response.content)["error"]
    assert error["message"] == "invalid x-api-key"
    assert error["type"] == "authentication_error"
    assert b"sk-ant-wrong-secret" not in response.content
    failure = await Log.objects.aget(request_id=response["X-Request-Id"], type=Log.Type.ERROR)
    assert "sk-ant-wrong-secret" not in failure.content


async def test_it_passes_a_bad_request_through_with_the_provider_message(alice_key, claude_channel, fake_anthropic):
    error = {"type": "invalid_request_error", "message": "messages: roles must alternate"}
    fake_anthropic.script.append(Behaviour(status=400, body={"type": "error", "error": error}))
    response = await post_chat(alice_key, chat())
    assert response.status_code == 400
    assert orjson.loads(response.content)["error"]["message"] == "messages: roles must alternate"
    assert len(fake_anthropic.requests) == 1  # a 400 is the request's fault: not retried


async def test_it_ends_a_stream_with_an_error_event_when_anthropic_fails_mid_stream(
    alice_key, claude_channel, fake_anthropic
):
    fake_anthropic.script.append(Behaviour(error_after=2))
    response = await post_chat(alice_key, chat(stream=True))
    payloads = await sse_payloads(response)
    assert payloads[-1] == sse.DONE
    chunks = chunks_of(payloads)
    assert assembled_text(chunks) == "".join(fake.REPLY_PIECES[:2])
    assert chunks[-1]["error"]["message"] == "Overloaded"
    log = await consume_log(response["X-Request-Id"])
    assert log.content.startswith("upstream failed mid-stream")
    assert (log.prompt_tokens, log.cache_read_tokens) == (fake.PROMPT_TOKENS, fake.CACHE_READ_TOKENS)  # message_start's
    assert log.completion_tokens > 0
