"""Gemini's native API <-> OpenAI chat and embeddings (relay.formats.gemini_convert), and the format's framing,
errors and key (relay.formats.gemini_native), checked against the official `google-genai` SDK's own types."""

import orjson
import pytest
from django.test import RequestFactory
from google.genai import types

from channels_app.routing import ChannelInfo
from relay.adaptors.base import RelayRequest, StreamState, UpstreamFailure, Usage
from relay.adaptors.gemini import GeminiAdaptor, NativeStream
from relay.errors import RelayError
from relay.formats import gemini_native
from relay.formats.gemini_convert import (
    GenerateStream,
    from_chat,
    from_embeddings,
    prompt_tokens,
    to_chat,
    to_embeddings,
    usage_metadata,
)
from relay.tokenizer import utf8_bytes
from tests.support.fakes import gemini_upstream

MODEL = "gpt-4o"
HI = [{"role": "user", "parts": [{"text": "hi"}]}]
PNG = "iVBORw0KGgo="
WEATHER = {
    "name": "lookup_weather",
    "description": "Weather for a city",
    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
}
WEATHER_TOOL = {"functionDeclarations": [WEATHER]}
USAGE = Usage(prompt_tokens=100, completion_tokens=30, cache_read_tokens=40, reasoning_tokens=10)


def chat(**fields) -> dict:
    return to_chat({"contents": HI, **fields}, MODEL, stream=False)


def refused(body: dict) -> RelayError:
    with pytest.raises(RelayError) as caught:
        to_chat(body, MODEL, stream=False)
    assert caught.value.status == 400
    return caught.value


def test_contents_become_messages():
    body = {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Be kind."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "What is "}, {"text": "this?"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "thinking...", "thought": True},
                    {"thoughtSignature": "c2ln"},
                    {"text": "A cat.", "thoughtSignature": "c2ln"},
                ],
            },
            {
                "parts": [  # no role: a user turn
                    {"text": "And this?"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/dog.jpg"}},
                    {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
                ]
            },
        ],
    }
    assert to_chat(body, MODEL, stream=False)["messages"] == [
        {"role": "system", "content": "Be brief.\nBe kind."},
        {"role": "user", "content": "What is this?"},
        {"role": "assistant", "content": "A cat."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/dog.jpg"}},
                {"type": "file", "file": {"filename": "file", "file_data": "data:application/pdf;base64,JVBERi0="}},
            ],
        },
    ]


def test_snake_case_fields_are_read_too():
    converted = chat(system_instruction={"parts": [{"text": "Be brief."}]}, generation_config={"max_output_tokens": 9})
    assert converted["messages"][0] == {"role": "system", "content": "Be brief."}
    assert converted["max_tokens"] == 9


def test_function_calls_get_ids_that_their_responses_answer():
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Lisbon and Porto?"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "lookup_weather", "args": {"city": "Lisbon"}}},
                    {"functionCall": {"name": "lookup_weather", "args": {"city": "Porto"}}},
                    {"functionCall": {"name": "clock", "args": {}, "id": "given-id"}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "clock", "response": {"now": "noon"}}},
                    {"functionResponse": {"name": "lookup_weather", "response": {"t": 21}}},
                    {"functionResponse": {"name": "lookup_weather", "response": {"t": 18}}},
                    {"text": "Thanks"},
                ],
            },
        ]
    }
    _, assistant, *tools, user = to_chat(body, MODEL, stream=False)["messages"]
    lisbon, porto, clock = assistant["tool_calls"]
    assert assistant["content"] is None and clock["id"] == "given-id"
    assert lisbon["id"].startswith("call_") and lisbon["id"] != porto["id"]
    assert lisbon["function"] == {"name": "lookup_weather", "arguments": '{"city":"Lisbon"}'}
    assert [(tool["tool_call_id"], tool["content"]) for tool in tools] == [
        ("given-id", '{"now":"noon"}'),
        (lisbon["id"], '{"t":21}'),
        (porto["id"], '{"t":18}'),
    ]
    assert user == {"role": "user", "content": "Thanks"}


def test_generation_config_maps_to_chat_fields():
    config = {
        "temperature": 0.3,
        "topP": 0.9,
        "topK": 40,
        "maxOutputTokens": 100,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.2,
        "responseMimeType": "application/json",
    }
    converted = chat(generationConfig=config)
    assert {name: converted[name] for name in converted if name not in ("model", "messages")} == {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 100,
        "stop": ["END"],
        "n": 2,
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "response_format": {"type": "json_object"},
    }


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "INTEGER"}}}}, "integer"),
        ({"responseJsonSchema": {"type": "object", "properties": {"a": {"type": "number"}}}}, "number"),
    ],
)
def test_response_schemas_become_json_schema(config, expected):
    response_format = chat(generationConfig={"responseMimeType": "application/json", **config})["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["properties"]["a"]["type"] == expected


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"thinkingBudget": 1024}, "low"),
        ({"thinkingBudget": 8192}, "medium"),
        ({"thinkingBudget": 32768}, "high"),
        ({"thinkingBudget": 0}, None),
        ({"thinkingBudget": -1}, None),
        ({"thinkingLevel": "HIGH"}, "high"),
        ({"thinkingLevel": "low"}, "low"),
    ],
)
def test_thinking_config_becomes_reasoning_effort(thinking, effort):
    assert chat(generationConfig={"thinkingConfig": thinking}).get("reasoning_effort") == effort


def test_function_declarations_and_tool_config():
    tools = [{"functionDeclarations": [WEATHER, {"name": "clock", "parametersJsonSchema": {"type": "object"}}]}]
    converted = chat(tools=tools)
    weather, clock = converted["tools"]
    assert weather["function"]["parameters"] == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    assert clock == {"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}}
    assert "tool_choice" not in converted
    for mode, choice in (("AUTO", "auto"), ("ANY", "required"), ("NONE", "none")):
        assert chat(tools=tools, toolConfig={"functionCallingConfig": {"mode": mode}})["tool_choice"] == choice
    only = chat(tools=tools, toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["clock"]}})
    assert only["tool_choice"] == {"type": "function", "function": {"name": "clock"}} and len(only["tools"]) == 1


@pytest.mark.parametrize("tool", [{"googleSearch": {}}, {"codeExecution": {}}, {"urlContext": {}}])
def test_built_in_tools_are_refused(tool):
    error = refused({"contents": HI, "tools": [tool]})
    assert next(iter(tool)) in error.message and error.param == f"tools.0.{next(iter(tool))}"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"contents": []}, "contents"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents.0.role"),
        ({"contents": [{"role": "user", "parts": "x"}]}, "contents.0.parts"),
        ({"contents": [{"role": "user", "parts": [{"executableCode": {}}]}]}, "contents.0.parts.0"),
        ({"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]}, "contents.0.parts.0"),
        ({"contents": HI, "cachedContent": "cachedContents/abc"}, "cachedContent"),
        ({"contents": HI, "generationConfig": {"stopSequences": "END"}}, "generationConfig.stopSequences"),
        (
            {
                "contents": HI,
                "tools": [{"functionDeclarations": [WEATHER]}],
                "toolConfig": {"functionCallingConfig": {"mode": "X"}},
            },
            "toolConfig",
        ),
    ],
)
def test_invalid_requests_are_refused_naming_the_field(body, param):
    assert refused(body).param == param


def test_stream_asks_for_usage():
    converted = to_chat({"contents": HI}, MODEL, stream=True)
    assert converted["stream"] is True and converted["stream_options"] == {"include_usage": True}


def test_answer_parses_as_the_sdk_response():
    message = {
        "role": "assistant",
        "content": "Sunny.",
        "reasoning_content": "Let me look.",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
    }
    answer = {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
    parsed = types.GenerateContentResponse.model_validate(from_chat(answer, MODEL, "resp-1", USAGE))
    assert parsed.text == "Sunny." and parsed.response_id == "resp-1" and parsed.model_version == MODEL
    (candidate,) = parsed.candidates
    assert candidate.finish_reason == types.FinishReason.STOP
    thought, _, call = candidate.content.parts
    assert thought.thought is True and thought.text == "Let me look."
    assert (call.function_call.name, call.function_call.args, call.function_call.id) == ("f", {"a": 1}, "call_1")
    assert parsed.usage_metadata == types.GenerateContentResponseUsageMetadata(
        prompt_token_count=100,
        candidates_token_count=20,
        thoughts_token_count=10,
        cached_content_token_count=40,
        total_token_count=130,
    )


@pytest.mark.parametrize(
    ("reason", "expected"), [("length", "MAX_TOKENS"), ("content_filter", "SAFETY"), (None, "STOP")]
)
def test_finish_reasons(reason, expected):
    answer = {"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": reason}]}
    assert from_chat(answer, MODEL, "r", Usage())["candidates"][0]["finishReason"] == expected


def test_usage_metadata_leaves_out_empty_lanes():
    assert usage_metadata(Usage(5, 2)) == {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}


def hub_chunk(delta: dict, finish_reason: str | None = None, index: int = 0) -> dict:
    return {"choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}]}


def test_stream_sends_text_as_it_comes_and_calls_whole():
    stream = GenerateStream(MODEL, "resp-1")
    chunks = [
        *stream.feed(hub_chunk({"role": "assistant", "content": ""})),
        *stream.feed(hub_chunk({"reasoning_content": "Hmm."})),
        *stream.feed(hub_chunk({"content": "Let me check."})),
        *stream.feed(
            hub_chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]})
        ),
        *stream.feed(hub_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]})),
        *stream.feed(hub_chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]})),
        *stream.feed(hub_chunk({}, "tool_calls")),
        *stream.finish(USAGE),
    ]
    parsed = [types.GenerateContentResponse.model_validate(chunk) for chunk in chunks]
    assert [chunk.candidates[0].content.parts[0].text for chunk in parsed[:2]] == ["Hmm.", "Let me check."]
    assert parsed[0].candidates[0].content.parts[0].thought is True
    (call,) = parsed[2].function_calls
    assert (call.name, call.args, call.id) == ("f", {"a": 1}, "call_1")
    last = parsed[-1]
    assert len(parsed) == 4 and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.total_token_count == 130 and parsed[0].usage_metadata is None
    assert stream.finish(USAGE) == [] and stream.feed(hub_chunk({"content": "late"})) == []


def test_stream_without_finish_reason_still_ends_with_the_calls_held():
    stream = GenerateStream(MODEL, "resp-1")
    stream.feed(hub_chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}))
    (last,) = stream.finish(Usage(1, 1))
    assert last["candidates"][0]["content"]["parts"] == [{"functionCall": {"name": "f", "args": {}, "id": "c"}}]
    assert last["candidates"][0]["finishReason"] == "STOP"


def test_embeddings_both_ways():
    single = {"content": {"parts": [{"text": "Lisbon"}]}, "outputDimensionality": 256}
    assert to_embeddings(single, "e", batch=False) == {"model": "e", "input": ["Lisbon"], "dimensions": 256}
    batch = {"requests": [{"model": "models/e", "content": {"parts": [{"text": t}]}} for t in ("a", "b")]}
    assert to_embeddings(batch, "e", batch=True) == {"model": "e", "input": ["a", "b"]}
    answer = {"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}]}
    assert from_embeddings(answer, batch=True) == {"embeddings": [{"values": [1.0]}, {"values": [2.0]}]}
    assert from_embeddings(answer, batch=False) == {"embedding": {"values": [1.0]}}
    with pytest.raises(RelayError):
        to_embeddings({"requests": []}, "e", batch=True)


def test_prompt_tokens_count_every_text():
    body = {
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "hello"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
        ],
        "tools": [{"functionDeclarations": [WEATHER]}],
    }
    counted = prompt_tokens(body, utf8_bytes)
    assert counted == 3 + 3 + 3 + 5 + 3 + len(b'{"name":"f","args":{}}') + len(orjson.dumps(body["tools"]))


# --- the format: framing, errors, keys ---


def test_sse_and_array_framing_of_a_converted_stream():
    for writer, expected_start in ((gemini_native.GENERATE_SSE, b"data: {"), (gemini_native.GENERATE_ARRAY, b"[{")):
        request = RelayRequest("streamGenerateContent", MODEL, {"contents": HI}, b"", True, False)
        stream = writer.stream_writer(request, "resp-1", 5)
        body = stream.frames([orjson.dumps(hub_chunk({"content": "Hi"}))]) + stream.closing(
            StreamState(), Usage(5, 1), None
        )
        assert body.startswith(expected_start)
        if writer is gemini_native.GENERATE_ARRAY:
            chunks = orjson.loads(body)
        else:
            chunks = [orjson.loads(frame[6:]) for frame in body.split(b"\r\n\r\n") if frame]
        assert chunks[0]["candidates"][0]["content"]["parts"] == [{"text": "Hi"}]
        assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 6


def test_a_stream_broken_off_ends_with_an_error_object():
    failure = UpstreamFailure(502, "upstream connection lost")
    array = gemini_native.GENERATE_ARRAY.native_writer()
    assert orjson.loads(array.frames([b'{"a":1}']) + array.closing(StreamState(), None, failure)) == [
        {"a": 1},
        {"error": {"code": 502, "message": "upstream connection lost", "status": "UNAVAILABLE"}},
    ]
    sse = gemini_native.GENERATE_SSE.native_writer()
    assert sse.relays_bytes and sse.closing(StreamState(), None, failure).startswith(b'data: {"error"')
    assert sse.closing(StreamState(), None, None) == b""


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ],
)
def test_errors_take_google_statuses(status, expected):
    response = gemini_native.error_response(RelayError(status, "why"))
    assert response.status_code == status
    assert orjson.loads(response.content) == {"error": {"code": status, "message": "why", "status": expected}}


def test_key_from_header_query_or_bearer():
    factory = RequestFactory()
    assert gemini_native.credential(factory.post("/", HTTP_X_GOOG_API_KEY="sk-a")) == "sk-a"
    assert gemini_native.credential(factory.post("/?key=sk-b")) == "sk-b"
    assert gemini_native.credential(factory.post("/", HTTP_AUTHORIZATION="Bearer sk-c")) == "Bearer sk-c"


def test_native_channels():
    generate, embed = gemini_native.GENERATE_SSE, gemini_native.EMBED
    assert generate.native_for("gemini", "anything") and generate.native_for("vertex", "gemini-2.5-pro")
    assert not generate.native_for("vertex", "claude-opus-4-1") and not generate.native_for("openai", "gemini-x")
    assert embed.native_for("gemini", "e") and not embed.native_for("vertex", "gemini-embedding-001")


# --- the gemini adaptor's pass-through ---


def native_request(method: str, body: dict, model: str = "gemini-2.5-flash") -> RelayRequest:
    return RelayRequest(method, model, body, orjson.dumps(body), method == "streamGenerateContent", False)


def test_pass_through_keeps_the_bytes_and_maps_the_model_in_the_path():
    raw = b'{"contents": [{"parts": [{"text": "hi"}]}]}'
    request = RelayRequest("streamGenerateContent", "gemini-2.5-flash", orjson.loads(raw), raw, True, False)
    channel = ChannelInfo(
        id=1,
        name="gemini",
        type="gemini",
        key=gemini_upstream.API_KEY,
        priority=0,
        weight=1,
        base_url="",
        model_mapping={"gemini-2.5-flash": "gemini-3"},
    )
    outgoing = GeminiAdaptor().build_request(request, channel)
    assert outgoing.content == raw
    assert outgoing.url.endswith(f"/v1beta/models/gemini-3:streamGenerateContent?alt=sse&key={gemini_upstream.API_KEY}")
    batch = {"requests": [{"model": "models/gemini-2.5-flash", "content": {"parts": [{"text": "a"}]}}]}
    mapped = GeminiAdaptor().build_request(native_request("batchEmbedContents", batch), channel)
    assert orjson.loads(mapped.content)["requests"][0]["model"] == "models/gemini-3"


def test_pass_through_answer_is_kept_and_read_for_usage():
    answer = orjson.dumps(gemini_upstream.whole_response(gemini_upstream.Behaviour(cached=True)))
    body, usage, text = GeminiAdaptor().convert_response(native_request("generateContent", {}), answer)
    assert body == answer and text == gemini_upstream.REPLY
    assert usage == Usage(270, 8, cache_read_tokens=200, reasoning_tokens=3)


def test_native_stream_reads_usage_at_the_finish_and_raises_on_an_error_event():
    stream = NativeStream(native_request("streamGenerateContent", {}))
    events = [orjson.dumps(event) for event in gemini_upstream.stream_events(gemini_upstream.Behaviour())]
    assert [stream.feed(event) for event in events[:-1]] == [[event] for event in events[:-1]]
    assert stream.state.usage is None and stream.state.input_usage is not None
    stream.feed(events[-1])
    assert stream.state.usage == Usage(270, 8, reasoning_tokens=3) and stream.state.text == gemini_upstream.REPLY
    with pytest.raises(Exception, match="overloaded"):
        stream.feed(orjson.dumps(gemini_upstream.UNAVAILABLE))


# --- the routes ---


def test_gemini_paths_answer_in_google_shape(client):
    for path in ("/v1beta/models/gemini-2.5-flash:generateContent", "/v1/models/gemini-2.5-flash:countTokens"):
        wrong_method = client.get(path)
        assert wrong_method.status_code == 405 and wrong_method["Allow"] == "POST"
        assert wrong_method.json()["error"]["status"] == "UNIMPLEMENTED"
    unknown_method = client.post("/v1beta/models/gemini-2.5-flash:predict", b"{}", content_type="application/json")
    assert unknown_method.status_code == 404 and unknown_method.json()["error"]["status"] == "NOT_FOUND"
    no_key = client.post("/v1/models/gemini-2.5-flash:generateContent", b"{}", content_type="application/json")
    assert no_key.status_code == 401 and no_key.json()["error"]["status"] == "UNAUTHENTICATED"
    listed = client.get("/v1beta/models")
    assert listed.status_code == 401 and listed.json()["error"]["code"] == 401
    assert "error" in client.get("/v1beta/cachedContents").json()


@pytest.mark.django_db
def test_openai_model_routes_stay_openai(client):
    assert client.get("/v1/models").json()["error"]["type"] == "authentication_error"
    assert client.get("/v1/models?key=sk-nope").json()["error"]["status"] == "UNAUTHENTICATED"
    bearer = {"HTTP_AUTHORIZATION": "Bearer sk-nope"}
    counted = client.post("/v1/models/gemini-2.5-flash:countTokens", b"{}", content_type="application/json", **bearer)
    assert counted.status_code == 401 and counted.json()["error"]["status"] == "UNAUTHENTICATED"
