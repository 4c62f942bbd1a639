"""Gemini channels: OpenAI chat <-> Gemini generateContent conversion, and the relay against a fake Gemini."""

import orjson
import pytest

from billing.models import Log
from channels_app.models import Channel
from channels_app.routing import ChannelInfo
from relay import sse
from relay.adaptors.base import UpstreamFailed, Usage
from relay.adaptors.gemini import GeminiAdaptor, GeminiStream, clean_schema
from tests.support.factories import make_channel
from tests.support.fakes import gemini_upstream as fake
from tests.support.fakes.gemini_upstream import Behaviour, FakeGemini
from tests.support.fakes.recording import served
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

MODEL = "gemini-2.0-flash"
HI = {"role": "user", "content": "hi"}
PNG = "iVBORw0KGgoAAAANSUhEUg=="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
LISBON = '{"city":"Lisbon"}'
ADAPTOR = GeminiAdaptor()


def chat(**fields) -> dict:
    return {"model": MODEL, "messages": [HI], **fields}


def channel_info(**fields) -> ChannelInfo:
    fields.setdefault("base_url", "")
    return ChannelInfo(id=1, name="gemini", type="gemini", key=fake.API_KEY, priority=0, weight=1, **fields)


def upstream_body(body: dict) -> dict:
    return orjson.loads(ADAPTOR.build_request(chat_request(body), channel_info()).content)


def upstream_url(body: dict) -> str:
    return ADAPTOR.build_request(chat_request(body), channel_info()).url


def convert_stream(body: dict, events: list[dict]) -> tuple[GeminiStream, list[dict]]:
    converter = ADAPTOR.stream_converter(chat_request(body))
    out = [chunk for event in events for chunk in converter.feed(orjson.dumps(event))]
    out += converter.finish()
    return converter, [orjson.loads(chunk) for chunk in out]


# --- request mapping ---


def test_it_calls_generate_content_with_the_key_as_a_query_parameter():
    outgoing = ADAPTOR.build_request(chat_request(chat()), channel_info())
    assert outgoing.url == (
        f"https://generativelanguage.googleapis.com/v1beta/models/{MODEL}:generateContent?key={fake.API_KEY}"
    )
    assert fake.API_KEY not in str(outgoing.headers)


def test_it_streams_with_alt_sse_and_the_mapped_model():
    channel = channel_info(model_mapping={MODEL: "gemini-2.5-flash"})
    outgoing = ADAPTOR.build_request(chat_request(chat(stream=True)), channel)
    assert outgoing.url.startswith(
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key="
    )


def test_it_takes_the_api_version_from_gemini_model_map(settings):
    settings.GEMINI_MODEL_MAP = "gemini-1.0-pro:v1, gemini-exp:v1alpha"
    assert "/v1/models/gemini-1.0-pro:" in upstream_url(chat(model="gemini-1.0-pro"))
    assert "/v1alpha/models/gemini-exp:" in upstream_url(chat(model="gemini-exp"))
    assert "/v1beta/models/gemini-2.0-flash:" in upstream_url(chat())


def test_it_sends_system_messages_as_system_instruction():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Metric."}, HI]
    body = upstream_body(chat(messages=messages))
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief.\nMetric."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]


def test_it_sends_the_system_prompt_as_a_user_turn_on_v1(settings):
    settings.GEMINI_MODEL_MAP = "gemini-1.0-pro:v1"
    body = upstream_body(chat(model="gemini-1.0-pro", messages=[{"role": "system", "content": "Be brief."}, HI]))
    assert "systemInstruction" not in body
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Be brief."}, {"text": "hi"}]}]


def test_it_maps_roles_to_user_and_model_and_merges_repeats():
    messages = [HI, {"role": "user", "content": "there"}, {"role": "assistant", "content": "Hello"}, HI]
    assert upstream_body(chat(messages=messages))["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}, {"text": "there"}]},
        {"role": "model", "parts": [{"text": "Hello"}]},
        {"role": "user", "parts": [{"text": "hi"}]},
    ]


def test_it_sends_data_url_images_inline_and_http_images_as_file_data():
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg?size=large"}},
    ]
    parts = upstream_body(chat(messages=[{"role": "user", "content": content}]))["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}
    assert parts[2] == {"fileData": {"fileUri": "https://example.com/cat.jpg?size=large", "mimeType": "image/jpeg"}}


def test_it_maps_sampling_and_output_settings_to_generation_config():
    body = upstream_body(
        chat(temperature=0.3, top_p=0.8, top_k=20, n=2, max_tokens=256, stop=["a", "b", "c", "d", "e", "f"])
    )
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.8,
        "topK": 20,
        "candidateCount": 2,
        "maxOutputTokens": 256,
        "stopSequences": ["a", "b", "c", "d", "e"],  # Gemini takes at most five
    }


def test_it_asks_for_json_when_the_client_wants_a_json_object():
    config = upstream_body(chat(response_format={"type": "json_object"}))["generationConfig"]
    assert config == {"responseMimeType": "application/json"}


def test_it_blocks_nothing_unless_the_safety_setting_says_otherwise(settings):
    assert {rule["threshold"] for rule in upstream_body(chat())["safetySettings"]} == {"BLOCK_NONE"}
    settings.GEMINI_SAFETY_SETTING = "BLOCK_ONLY_HIGH"
    rules = upstream_body(chat())["safetySettings"]
    assert len(rules) == 5 and {rule["threshold"] for rule in rules} == {"BLOCK_ONLY_HIGH"}


def test_it_converts_tools_to_function_declarations_with_a_schema_gemini_accepts():
    no_parameters = {
        "type": "function",
        "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
    }
    body = upstream_body(chat(tools=[WEATHER_TOOL, no_parameters], tool_choice="required"))
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "lookup_weather",
                    "description": "Current weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
                {"name": "now"},
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_it_keeps_properties_whose_names_look_like_schema_keywords():
    schema = {"type": "object", "title": "x", "properties": {"title": {"type": "string", "format": "email"}}}
    assert clean_schema(schema) == {"type": "object", "properties": {"title": {"type": "string"}}}


def test_it_names_the_only_allowed_function_for_a_forced_tool_choice():
    forced = {"type": "function", "function": {"name": "lookup_weather"}}
    config = upstream_body(chat(tools=[WEATHER_TOOL], tool_choice=forced))["toolConfig"]
    assert config == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup_weather"]}}


def test_it_turns_tool_calls_and_results_into_function_call_and_function_response_parts():
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup_weather", "arguments": LISBON},
    }
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    contents = upstream_body(chat(messages=messages))["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "lookup_weather", "args": {"city": "Lisbon"}}}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "lookup_weather", "response": {"temp_c": 21}}},
            {
                "functionResponse": {
                    "name": "lookup_weather",
                    "response": {"name": "lookup_weather", "content": "sunny"},
                }
            },
        ],
    }


# --- response conversion ---


def test_it_converts_a_response_with_usage_including_thoughts():
    answer, usage, text = ADAPTOR.convert_response(chat_request(chat()), orjson.dumps(fake.whole_response(Behaviour())))
    body = orjson.loads(answer)
    assert body["model"] == MODEL and body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": fake.REPLY}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert usage == Usage(fake.PROMPT_TOKENS, fake.COMPLETION_TOKENS, reasoning_tokens=fake.THOUGHT_TOKENS)
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": fake.THOUGHT_TOKENS}
    assert text == fake.REPLY


def test_it_reads_the_context_cache_hit_as_part_of_the_prompt():
    content = orjson.dumps(fake.whole_response(Behaviour(cached=True)))
    answer, usage, _ = ADAPTOR.convert_response(chat_request(chat()), content)
    assert usage == Usage(
        fake.PROMPT_TOKENS,
        fake.COMPLETION_TOKENS,
        cache_read_tokens=fake.CACHED_TOKENS,
        reasoning_tokens=fake.THOUGHT_TOKENS,
    )
    assert orjson.loads(answer)["usage"] == {
        "prompt_tokens": fake.PROMPT_TOKENS,
        "completion_tokens": fake.COMPLETION_TOKENS,
        "total_tokens": fake.PROMPT_TOKENS + fake.COMPLETION_TOKENS,
        "prompt_tokens_details": {"cached_tokens": fake.CACHED_TOKENS},
        "completion_tokens_details": {"reasoning_tokens": fake.THOUGHT_TOKENS},
    }


def test_a_stream_reads_the_cache_hit_and_keeps_it_when_cut():
    converter, _ = convert_stream(chat(stream=True), fake.stream_events(Behaviour(cached=True)))
    assert converter.state.usage.cache_read_tokens == fake.CACHED_TOKENS
    cut = ADAPTOR.stream_converter(chat_request(chat(stream=True)))
    cut.feed(orjson.dumps(fake.stream_events(Behaviour(cached=True))[0]))
    assert cut.state.usage is None
    assert (cut.state.input_usage.prompt_tokens, cut.state.input_usage.cache_read_tokens) == (
        fake.PROMPT_TOKENS,
        fake.CACHED_TOKENS,
    )


def test_it_converts_function_calls_to_tool_calls_with_json_string_arguments():
    content = orjson.dumps(fake.whole_response(Behaviour(function_call=True)))
    body = orjson.loads(ADAPTOR.convert_response(chat_request(chat()), content)[0])
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "lookup_weather", "arguments": LISBON}


@pytest.mark.parametrize(
    ("reason", "finish_reason"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_it_maps_finish_reasons(reason, finish_reason):
    content = orjson.dumps(fake.whole_response(Behaviour(finish_reason=reason)))
    assert orjson.loads(ADAPTOR.convert_response(chat_request(chat()), content)[0])["choices"][0]["finish_reason"] == (
        finish_reason
    )


def test_it_answers_a_blocked_prompt_with_content_filter():
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7}}
    answer, usage, _ = ADAPTOR.convert_response(chat_request(chat()), orjson.dumps(blocked))
    assert orjson.loads(answer)["choices"][0]["finish_reason"] == "content_filter"
    assert usage == Usage(7, 0)


def test_it_reads_google_errors_with_the_provider_message():
    failure = ADAPTOR.parse_error(
        429, orjson.dumps({"error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED"}})
    )
    assert (failure.status, failure.message, failure.code) == (429, "Quota", "RESOURCE_EXHAUSTED")


# --- stream conversion ---


def test_it_converts_sse_events_to_openai_chunks():
    converter, chunks = convert_stream(chat(stream=True), fake.stream_events(Behaviour()))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": fake.REPLY_PIECES[0]}
    assert all(chunk["id"] == "resp-fake" and chunk["model"] == MODEL for chunk in chunks)
    assert assembled_text(chunks) == fake.REPLY
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert not any("usage" in chunk for chunk in chunks)  # the relay adds the usage chunk itself
    assert converter.state.usage == Usage(
        fake.PROMPT_TOKENS, fake.COMPLETION_TOKENS, reasoning_tokens=fake.THOUGHT_TOKENS
    )


def test_it_streams_function_calls_as_complete_tool_calls():
    converter, chunks = convert_stream(chat(stream=True), fake.stream_events(Behaviour(function_call=True)))
    calls = assembled_tool_calls(chunks)
    assert list(calls) == [0]
    assert calls[0]["name"] == "lookup_weather" and calls[0]["arguments"] == LISBON
    assert finish_reasons(chunks) == ["tool_calls"]
    assert converter.state.max_tool_calls == 1


def test_it_commits_usage_only_once_the_answer_is_complete():
    converter = ADAPTOR.stream_converter(chat_request(chat(stream=True)))
    first, *_ = fake.stream_events(Behaviour())
    converter.feed(orjson.dumps(first))
    assert converter.state.usage is None  # a cut stream is billed on what was delivered


def test_it_adds_a_finish_chunk_when_the_stream_closes_without_a_finish_reason():
    events = fake.stream_events(Behaviour())
    del events[-1]["candidates"][0]["finishReason"]
    converter, chunks = convert_stream(chat(stream=True), events)
    assert finish_reasons(chunks) == ["stop"]
    assert converter.state.usage == Usage(
        fake.PROMPT_TOKENS, fake.COMPLETION_TOKENS, reasoning_tokens=fake.THOUGHT_TOKENS
    )


def test_it_raises_the_provider_error_when_an_error_event_arrives_mid_stream():
    converter = ADAPTOR.stream_converter(chat_request(chat(stream=True)))
    with pytest.raises(UpstreamFailed) as raised:
        for event in fake.stream_events(Behaviour(error_after=1)):
            converter.feed(orjson.dumps(event))
    assert raised.value.failure.message == fake.UNAVAILABLE["error"]["message"]


# --- through the relay, against the fake Gemini ---


fake_gemini_server, fake_gemini = served(FakeGemini, "fake_gemini")


@pytest.fixture
def gemini_channel(fake_gemini: FakeGemini, transactional_db):
    return make_channel(fake_gemini.url, models=[MODEL], key=fake.API_KEY, type="gemini")


@pytest.fixture
def gemini_channel_with_bad_key(fake_gemini: FakeGemini, transactional_db):
    return make_channel(fake_gemini.url, models=[MODEL], key="AIza-wrong-secret", type="gemini")


async def test_it_relays_a_chat_answer_and_bills_gemini_usage(alice_key, gemini_channel, fake_gemini):
    response = await post_chat(alice_key, chat(messages=[{"role": "system", "content": "Be brief."}, HI]))
    assert response.status_code == 200
    body = orjson.loads(response.content)
    assert body["choices"][0]["message"]["content"] == fake.REPLY
    sent = fake_gemini.requests[0]
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.query == {"key": fake.API_KEY}
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (fake.PROMPT_TOKENS, fake.COMPLETION_TOKENS)


async def test_it_streams_an_answer_with_the_usage_chunk_the_client_asked_for(alice_key, gemini_channel, fake_gemini):
    response = await post_chat(alice_key, chat(stream=True, stream_options={"include_usage": True}))
    assert response.status_code == 200
    payloads = await sse_payloads(response)
    assert payloads[-1] == sse.DONE
    chunks = chunks_of(payloads)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert assembled_text(chunks) == fake.REPLY
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": fake.PROMPT_TOKENS,
        "completion_tokens": fake.COMPLETION_TOKENS,
        "total_tokens": fake.PROMPT_TOKENS + fake.COMPLETION_TOKENS,
        "completion_tokens_details": {"reasoning_tokens": fake.THOUGHT_TOKENS},
    }
    assert fake_gemini.requests[0].query == {"alt": "sse", "key": fake.API_KEY}
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (fake.PROMPT_TOKENS, fake.COMPLETION_TOKENS)
    assert log.content.startswith("stream ended normally")


async def test_it_round_trips_a_tool_call(alice_key, gemini_channel, fake_gemini):
    fake_gemini.script.append(Behaviour(function_call=True))
    question = {"role": "user", "content": "Weather in Lisbon?"}
    first = await post_chat(alice_key, chat(messages=[question], tools=[WEATHER_TOOL]))
    message = orjson.loads(first.content)["choices"][0]["message"]
    call = message["tool_calls"][0]
    assert call["function"] == {"name": "lookup_weather", "arguments": LISBON}

    result = {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 21}'}
    second = await post_chat(alice_key, chat(messages=[question, message, result], tools=[WEATHER_TOOL]))
    assert orjson.loads(second.content)["choices"][0]["message"]["content"] == fake.REPLY
    contents = fake_gemini.requests[1].body["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "lookup_weather", "args": {"city": "Lisbon"}}}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "lookup_weather", "response": {"temp_c": 21}}}],
    }


async def test_it_streams_a_tool_call(alice_key, gemini_channel, fake_gemini):
    fake_gemini.script.append(Behaviour(function_call=True))
    response = await post_chat(alice_key, chat(stream=True, tools=[WEATHER_TOOL]))
    chunks = chunks_of(await sse_payloads(response))
    assert assembled_tool_calls(chunks)[0]["arguments"] == LISBON
    assert finish_reasons(chunks) == ["tool_calls"]


async def test_a_dead_key_is_a_401_in_openai_shape_that_disables_the_channel_without_leaking_the_key(
    alice_key, gemini_channel_with_bad_key, fake_gemini
):
    """Google refuses a dead key with 400 INVALID_ARGUMENT and the reason API_KEY_INVALID: the key, not the
    request, is at fault."""
    response = await post_chat(alice_key, chat())
    assert response.status_code == 401
    error = orjson.loads(response.content)["error"]
    assert error["message"] == fake.BAD_KEY_MESSAGE
    assert error["code"] == "INVALID_ARGUMENT"
    assert b"AIza-wrong-secret" not in response.content
    failure = await Log.objects.aget(request_id=response["X-Request-Id"], type=Log.Type.ERROR)
    assert "AIza-wrong-secret" not in failure.content
    channel = await Channel.objects.aget(pk=gemini_channel_with_bad_key.pk)
    assert channel.status == Channel.Status.AUTO_DISABLED


async def test_it_ends_a_stream_with_an_error_event_when_gemini_fails_mid_stream(
    alice_key, gemini_channel, fake_gemini
):
    fake_gemini.script.append(Behaviour(error_after=2))
    response = await post_chat(alice_key, chat(stream=True))
    payloads = await sse_payloads(response)
    assert payloads[-1] == sse.DONE
    chunks = chunks_of(payloads)
    assert assembled_text(chunks) == "".join(fake.REPLY_PIECES[:2])
    assert chunks[-1]["error"]["message"] == fake.UNAVAILABLE["error"]["message"]
    log = await consume_log(response["X-Request-Id"])
    assert log.content.startswith("upstream failed mid-stream")
    assert log.completion_tokens > 0
