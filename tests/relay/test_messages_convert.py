"""Anthropic Messages <-> OpenAI chat conversion (relay.formats.anthropic_convert), checked against the
official `anthropic` SDK: what MessagesStream and from_chat produce is fed to the SDK's own parsing."""

import hashlib

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types import (
    Message,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
)

from relay.adaptors.base import Usage
from relay.errors import RelayError
from relay.formats.anthropic_convert import (
    MessagesStream,
    from_chat,
    prompt_tokens,
    stop_reason,
    to_chat,
    usage_object,
)
from relay.tokenizer import utf8_bytes
from tests.support.chat_shapes import chunk, completion, tool_delta
from tests.support.claude_code_shapes import (
    BASH_TOOL,
    CLAUDE_CODE_REQUEST,
    PNG_BASE64,
    READ_TOOL,
    USER_ID,
    claude_code_request,
)

MODEL = "gpt-4o"
MESSAGE_ID = "msg_gateway01"
HI = [{"role": "user", "content": "hi"}]
PNG_URL = f"data:image/png;base64,{PNG_BASE64}"
EVENT_MODELS = {
    "message_start": RawMessageStartEvent,
    "content_block_start": RawContentBlockStartEvent,
    "content_block_delta": RawContentBlockDeltaEvent,
    "content_block_stop": RawContentBlockStopEvent,
    "message_delta": RawMessageDeltaEvent,
    "message_stop": RawMessageStopEvent,
}


def request(**fields) -> dict:
    return {"model": MODEL, "max_tokens": 256, "messages": HI, **fields}


def converted_messages(*messages: dict, **fields) -> list[dict]:
    return to_chat(request(messages=list(messages), **fields))["messages"]


def rejection(body: dict) -> RelayError:
    with pytest.raises(RelayError) as raised:
        to_chat(body)
    assert raised.value.status == 400
    assert raised.value.code == "invalid_request_error"
    return raised.value


def assert_tool_answers_follow_their_calls(messages: list[dict]) -> None:
    """OpenAI's rule: an assistant message with tool calls is followed at once by a tool message for each."""
    for position, message in enumerate(messages):
        if message.get("tool_calls"):
            ids = sorted(call["id"] for call in message["tool_calls"])
            following = messages[position + 1 : position + 1 + len(ids)]
            assert {item["role"] for item in following} == {"tool"}
            assert sorted(item["tool_call_id"] for item in following) == ids


def openai_call(call_id: str, name: str, arguments: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# --- request: Messages -> OpenAI chat ---


def test_it_converts_claude_codes_request():
    chat = to_chat(claude_code_request())

    assert chat["messages"] == [
        {
            "role": "system",
            "content": "You are Claude Code, Anthropic's official CLI for Claude.\n\nYou are an interactive CLI tool "
            "that helps users with software engineering tasks. Use the tools available to you to read, change and "
            "run code.",
        },
        {
            "role": "user",
            "content": "<system-reminder>\nThe working directory is /home/dev/app.\n</system-reminder>\n\n"
            "Why does the test in tests/test_app.py fail?",
        },
        {
            "role": "assistant",
            "content": "Let me look at the test.",
            "tool_calls": [openai_call("toolu_01Read", "Read", '{"file_path":"/home/dev/app/t.py"}')],
        },
        {"role": "tool", "tool_call_id": "toolu_01Read", "content": "def test_it():\n    assert 1 == 2\n"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [openai_call("toolu_01Bash", "Bash", '{"command":"pytest -q"}')],
        },
        {"role": "tool", "tool_call_id": "toolu_01Bash", "content": "Error: FAILED tests/test_app.py::test_it"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": PNG_URL}},
                {"type": "text", "text": "Fix it, please."},
            ],
        },
    ]
    assert_tool_answers_follow_their_calls(chat["messages"])
    assert chat["tools"][0] == {
        "type": "function",
        "function": {
            "name": "Bash",
            "parameters": BASH_TOOL["input_schema"],
            "description": BASH_TOOL["description"],
        },
    }
    assert [tool["function"]["name"] for tool in chat["tools"]] == ["Bash", "Read", "Edit"]
    assert "cache_control" not in orjson.dumps(chat).decode()
    assert chat["model"] == CLAUDE_CODE_REQUEST["model"]
    assert chat["max_tokens"] == 32000
    assert chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}
    assert chat["tool_choice"] == "auto"
    assert chat["reasoning_effort"] == "medium"
    assert chat["temperature"] == 1
    assert "thinking" not in chat and "metadata" not in chat


def test_it_leaves_the_callers_body_unchanged():
    body = claude_code_request()
    to_chat(body)
    assert body == CLAUDE_CODE_REQUEST


def test_it_sends_tool_results_before_the_rest_of_the_user_turn():
    call = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}
    messages = converted_messages(
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": [call, {**call, "id": "toolu_2"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "here you are"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "two"},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "one"}]},
            ],
        },
    )

    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "toolu_2", "content": "two"},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "one"},
        {"role": "user", "content": "here you are"},
    ]
    assert_tool_answers_follow_their_calls(messages)


def test_it_joins_the_text_blocks_of_a_tool_result():
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "line one"}, {"type": "text", "text": "line two"}],
    }
    assert converted_messages({"role": "user", "content": [result]}) == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "line one\n\nline two"}
    ]


def test_it_accepts_a_tool_result_without_content():
    result = {"type": "tool_result", "tool_use_id": "toolu_1"}
    assert converted_messages({"role": "user", "content": [result]}) == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": ""}
    ]


def test_it_takes_system_as_a_string():
    assert converted_messages(*HI, system="Be brief.")[0] == {"role": "system", "content": "Be brief."}


def test_it_leaves_out_an_empty_system():
    assert converted_messages(*HI, system=[]) == [{"role": "user", "content": "hi"}]


def test_it_drops_an_assistant_turn_of_thinking_only():
    thinking = {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "x"}]}
    assert converted_messages(*HI, thinking, {"role": "user", "content": "go on"}) == [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "go on"},
    ]


def test_it_joins_the_text_blocks_of_an_assistant_turn():
    texts = [{"type": "text", "text": "First."}, {"type": "text", "text": "Second."}]
    assert converted_messages(*HI, {"role": "assistant", "content": texts})[-1]["content"] == "First.\n\nSecond."


def test_it_keeps_an_assistant_prefill():
    assert converted_messages(*HI, {"role": "assistant", "content": "The answer is"})[-1] == {
        "role": "assistant",
        "content": "The answer is",
    }


def test_it_converts_images():
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    base64_image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}}
    content = [base64_image, url_image, {"type": "text", "text": "what are these?"}]

    assert converted_messages({"role": "user", "content": content}) == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": PNG_URL}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "text", "text": "what are these?"},
            ],
        }
    ]


def test_it_converts_documents():
    pdf = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="}
    content = [
        {"type": "document", "source": pdf, "title": "report.pdf"},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"}},
        {"type": "text", "text": "summarise"},
    ]

    assert converted_messages({"role": "user", "content": content})[0]["content"] == [
        {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQ="}},
        {"type": "text", "text": "plain notes"},
        {"type": "text", "text": "summarise"},
    ]


def test_it_maps_sampling_and_stop_sequences():
    chat = to_chat(request(temperature=0.2, top_p=0.9, top_k=40, stop_sequences=["END", "STOP"]))
    assert (chat["temperature"], chat["top_p"], chat["stop"]) == (0.2, 0.9, ["END", "STOP"])
    assert "top_k" not in chat and "stop_sequences" not in chat


def test_it_keeps_a_non_stream_request_without_stream_options():
    chat = to_chat(request(stream=False))
    assert chat["stream"] is False and "stream_options" not in chat
    assert "stream" not in to_chat(request())


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "Bash"}, {"tool_choice": {"type": "function", "function": {"name": "Bash"}}}),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
    ],
)
def test_it_maps_tool_choice(choice, expected):
    chat = to_chat(request(tools=[BASH_TOOL], tool_choice=choice))
    assert {name: chat[name] for name in ("tool_choice", "parallel_tool_calls") if name in chat} == expected


def test_it_sends_no_tool_choice_without_tools():
    chat = to_chat(request(tool_choice={"type": "any", "disable_parallel_tool_use": True}))
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & chat.keys()


def test_it_gives_a_tool_without_schema_an_empty_object_schema():
    tool = to_chat(request(tools=[{"name": "now"}]))["tools"][0]
    assert tool == {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}


def test_it_refuses_server_tools():
    error = rejection(request(tools=[READ_TOOL, {"type": "web_search_20250305", "name": "web_search"}]))
    assert "not supported on this channel" in error.message
    assert "web_search_20250305" in error.message
    assert error.param == "tools.1.type"


@pytest.mark.parametrize(
    ("budget", "effort"), [(1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"), (16384, "high")]
)
def test_it_maps_the_thinking_budget_to_reasoning_effort(budget, effort):
    chat = to_chat(request(max_tokens=32000, thinking={"type": "enabled", "budget_tokens": budget}))
    assert chat["reasoning_effort"] == effort


def test_it_sends_no_effort_when_thinking_is_disabled():
    assert "reasoning_effort" not in to_chat(request(thinking={"type": "disabled"}))


@pytest.mark.parametrize(("effort", "expected"), [("low", "low"), ("high", "high"), ("max", "high")])
def test_it_takes_adaptive_thinkings_effort(effort, expected):
    chat = to_chat(request(thinking={"type": "adaptive"}, output_config={"effort": effort}))
    assert chat["reasoning_effort"] == expected


def test_it_passes_a_short_user_id_as_user():
    assert to_chat(request(metadata={"user_id": "alice"}))["user"] == "alice"


def test_it_hashes_a_user_id_longer_than_openai_takes():
    user = to_chat(request(metadata={"user_id": USER_ID}))["user"]
    assert user == hashlib.sha256(USER_ID.encode()).hexdigest()
    assert len(user) == 64


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"messages": None}, "messages", "messages must be a non-empty list"),
        ({"messages": []}, "messages", "messages must be a non-empty list"),
        ({"messages": {"role": "user"}}, "messages", "messages must be a non-empty list"),
        ({"messages": ["hi"]}, "messages.0", "a message must be an object"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role", "unknown role 'system'"),
        ({"messages": [{"role": "user", "content": ["hi"]}]}, "messages.0.content.0", "must be an object"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content", "content must be a string or a list"),
        ({"max_tokens": None}, "max_tokens", "max_tokens is required"),
        ({"max_tokens": 0}, "max_tokens", "positive integer"),
        ({"max_tokens": "100"}, "max_tokens", "positive integer"),
        ({"max_tokens": True}, "max_tokens", "positive integer"),
        ({"system": 5}, "system", "system must be a string or a list of text blocks"),
        ({"system": [{"type": "image"}]}, "system.0", "expected a text block"),
        ({"stream": "yes"}, "stream", "stream must be true or false"),
        ({"stop_sequences": "END"}, "stop_sequences", "list of strings"),
        ({"tools": {"name": "x"}}, "tools", "tools must be a list"),
        ({"tools": [{"description": "no name"}]}, "tools.0.name", "a tool needs a name"),
        ({"tools": [BASH_TOOL], "tool_choice": {"type": "some"}}, "tool_choice", "tool_choice must be"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens", "budget_tokens must be an integer"),
    ],
)
def test_it_refuses_an_invalid_request(fields, param, words):
    body = {key: value for key, value in request(**fields).items() if value is not None}
    error = rejection(body)
    assert words in error.message
    assert error.param == param


@pytest.mark.parametrize(
    ("block", "param", "words"),
    [
        ({"type": "image", "source": {"type": "file", "file_id": "f1"}}, "source", "image source of type 'file'"),
        ({"type": "image"}, "source", "needs a source object"),
        ({"type": "image", "source": {"type": "base64", "data": "x"}}, "source", "media_type and data"),
        ({"type": "document", "source": {"type": "url", "url": "https://x"}}, "source", "document source"),
        ({"type": "search_result", "content": []}, "", "content block type 'search_result'"),
        ({"type": "tool_result", "content": "x"}, "tool_use_id", "needs the tool_use_id"),
        ({"type": "tool_result", "tool_use_id": "t", "content": 3}, "content", "tool_result content must be"),
        ({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "video"}]}, "content.0", "text block"),
    ],
)
def test_it_refuses_an_invalid_user_block(block, param, words):
    error = rejection(request(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, block]}]))
    assert words in error.message
    assert error.param == "messages.0.content.1" + (f".{param}" if param else "")


@pytest.mark.parametrize(
    ("block", "param", "words"),
    [
        ({"type": "tool_use", "id": "t", "input": {}}, "", "needs an id and a name"),
        ({"type": "tool_use", "id": "t", "name": "Bash", "input": "ls"}, ".input", "input must be an object"),
        ({"type": "image", "source": {}}, "", "content block type 'image' in an assistant turn"),
    ],
)
def test_it_refuses_an_invalid_assistant_block(block, param, words):
    error = rejection(request(messages=[*HI, {"role": "assistant", "content": [block]}]))
    assert words in error.message
    assert error.param == "messages.1.content.0" + param


# --- answer: OpenAI chat -> Messages ---


def sdk_client(status: int, content: bytes, content_type: str) -> anthropic.Anthropic:
    """The official SDK, answered by a transport that returns `content` for /v1/messages."""

    def answer(sent: httpx2.Request) -> httpx2.Response:
        assert sent.url.path == "/v1/messages"
        return httpx2.Response(status, content=content, headers={"content-type": content_type})

    http_client = httpx2.Client(transport=httpx2.MockTransport(answer))
    return anthropic.Anthropic(api_key="sk-test", base_url="http://gateway.test", http_client=http_client)


def sdk_message(answer: dict) -> Message:
    client = sdk_client(200, orjson.dumps(answer), "application/json")
    return client.messages.create(model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "hi"}])


def test_it_answers_text_as_the_sdk_reads_it():
    answer = from_chat(completion({"content": "Hello!"}), "claude-x", MESSAGE_ID)
    message = sdk_message(answer)

    assert Message.model_validate(answer).to_dict() == message.to_dict()
    assert (message.id, message.type, message.role, message.model) == (MESSAGE_ID, "message", "assistant", "claude-x")
    assert [(block.type, block.text) for block in message.content if block.type == "text"] == [("text", "Hello!")]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 5)


def test_it_answers_reasoning_and_tool_calls():
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "Read", "arguments": '{"file_path":"/a"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "Bash", "arguments": '{"command": "ls'}},
    ]
    chat = completion({"content": "", "reasoning_content": "Two calls.", "tool_calls": calls}, "tool_calls")
    message = sdk_message(from_chat(chat, MODEL, MESSAGE_ID))

    assert [block.to_dict() for block in message.content] == [
        {"type": "thinking", "thinking": "Two calls.", "signature": ""},
        {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"file_path": "/a"}},
        {"type": "tool_use", "id": "call_2", "name": "Bash", "input": {}},  # broken JSON arguments
    ]
    assert message.stop_reason == "tool_use"


def test_it_takes_reasoning_under_its_other_name():
    answer = from_chat(completion({"content": "4", "reasoning": "2+2"}), MODEL, MESSAGE_ID)
    assert [block["type"] for block in answer["content"]] == ["thinking", "text"]


def test_it_answers_cached_usage():
    usage = {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}}
    message = sdk_message(from_chat(completion({"content": "ok"}, "length", usage), MODEL, MESSAGE_ID))

    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (40, 60)
    assert (message.usage.cache_creation_input_tokens, message.usage.output_tokens) == (0, 7)


def test_it_answers_zero_usage_when_the_answer_has_none():
    chat = completion({"content": "ok"})
    del chat["usage"]
    assert from_chat(chat, MODEL, MESSAGE_ID)["usage"]["input_tokens"] == 0


@pytest.mark.parametrize(
    ("finish_reason", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("something_new", "end_turn"),
    ],
)
def test_it_maps_finish_reasons(finish_reason, reason):
    assert stop_reason(finish_reason) == reason


def test_it_reports_the_cache_lanes_of_usage():
    usage = Usage(1000, 50, cache_read_tokens=600, cache_write_5m_tokens=100, cache_write_1h_tokens=200)
    assert usage_object(usage) == {
        "input_tokens": 100,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 600,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
        "output_tokens": 50,
    }


# --- stream: OpenAI chunks -> Anthropic events ---


def stream_frames(chunks: list[dict], usage: Usage | None = None, input_tokens: int = 12) -> list[bytes]:
    stream = MessagesStream(MODEL, MESSAGE_ID, input_tokens)
    frames = stream.start()
    for item in chunks:
        frames += stream.feed(item)
    return frames + stream.finish(usage)


def events_of(frames: list[bytes]) -> list[dict]:
    """Each frame's data, after checking its framing and that the SDK's event model validates it."""
    events = []
    for frame in frames:
        head, data, end = frame.split(b"\n", 2)
        event = orjson.loads(data.removeprefix(b"data: "))
        assert head == b"event: " + event["type"].encode() and data.startswith(b"data: ") and end == b"\n"
        if event["type"] in EVENT_MODELS:
            EVENT_MODELS[event["type"]].model_validate(event)
        events.append(event)
    return events


def assert_grammar(events: list[dict]) -> None:
    """message_start, ping, then blocks in index order (start, deltas, stop), message_delta, message_stop."""
    kinds = [event["type"] for event in events]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-2:] == ["message_delta", "message_stop"]
    open_index, next_index = None, 0
    for event in events[2:-2]:
        if event["type"] == "content_block_start":
            assert open_index is None and event["index"] == next_index
            open_index, next_index = next_index, next_index + 1
        elif event["type"] == "content_block_delta":
            assert event["index"] == open_index
        else:
            assert event["type"] == "content_block_stop" and event["index"] == open_index
            open_index = None
    assert open_index is None


def sdk_final_message(frames: list[bytes]) -> Message:
    client = sdk_client(200, b"".join(frames), "text/event-stream")
    with client.messages.stream(model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "hi"}]) as stream:
        return stream.get_final_message()


def streamed(chunks: list[dict], usage: Usage | None = None) -> tuple[list[dict], Message]:
    frames = stream_frames(chunks, usage)
    events = events_of(frames)
    assert_grammar(events)
    return events, sdk_final_message(frames)


def test_it_streams_text():
    chunks = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo!"})]
    events, message = streamed([*chunks, chunk({}, "stop")], Usage(prompt_tokens=12, completion_tokens=3))

    assert events[0]["message"]["usage"]["input_tokens"] == 12
    assert events[2] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert events[3]["delta"] == {"type": "text_delta", "text": "Hel"}
    assert events[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": usage_object(Usage(prompt_tokens=12, completion_tokens=3)),
    }
    assert [block.to_dict() for block in message.content] == [{"type": "text", "text": "Hello!"}]
    assert (message.id, message.stop_reason, message.usage.output_tokens) == (MESSAGE_ID, "end_turn", 3)


def test_it_streams_thinking_then_text():
    chunks = [
        chunk({"reasoning_content": "Let me "}),
        chunk({"reasoning_content": "think."}),
        chunk({"content": "Four."}),
        chunk({}, "stop"),
    ]
    events, message = streamed(chunks)

    assert [block.to_dict() for block in message.content] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": ""},
        {"type": "text", "text": "Four."},
    ]
    deltas = [event["delta"]["type"] for event in events if event["type"] == "content_block_delta"]
    assert deltas == ["thinking_delta", "thinking_delta", "text_delta"]


def test_it_streams_a_tool_call_with_arguments_in_many_chunks():
    arguments = '{"command": "pytest -q tests/test_app.py", "timeout": 60000}'
    pieces = [arguments[start : start + 5] for start in range(0, len(arguments), 5)]
    chunks = [chunk({"content": "Running the tests."}), chunk(tool_delta(0, "", "call_1", "Bash"))]
    chunks += [chunk(tool_delta(0, piece)) for piece in pieces]
    events, message = streamed([*chunks, chunk({}, "tool_calls")])

    assert [block.to_dict() for block in message.content] == [
        {"type": "text", "text": "Running the tests."},
        {"type": "tool_use", "id": "call_1", "name": "Bash", "input": orjson.loads(arguments)},
    ]
    assert message.stop_reason == "tool_use"
    assert events[5]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {}}
    fragments = [event["delta"]["partial_json"] for event in events if event.get("index") == 1 and "delta" in event]
    assert fragments == pieces


def test_it_streams_two_parallel_tool_calls():
    chunks = [
        chunk(tool_delta(0, '{"file_pa', "call_a", "Read")),
        chunk(tool_delta(0, 'th": "/a"}')),
        chunk(tool_delta(1, "", "call_b", "Read")),
        chunk(tool_delta(1, '{"file_path"')),
        chunk(tool_delta(1, ': "/b"}')),
        chunk({}, "tool_calls"),
    ]
    events, message = streamed(chunks)

    assert [block.to_dict() for block in message.content] == [
        {"type": "tool_use", "id": "call_a", "name": "Read", "input": {"file_path": "/a"}},
        {"type": "tool_use", "id": "call_b", "name": "Read", "input": {"file_path": "/b"}},
    ]
    assert [event["index"] for event in events if event["type"] == "content_block_start"] == [0, 1]


def test_it_streams_whole_tool_calls_given_in_one_chunk():
    calls = [
        {"index": 0, "id": "call_a", "function": {"name": "Read", "arguments": '{"file_path": "/a"}'}},
        {"index": 1, "id": "call_b", "function": {"name": "Bash", "arguments": '{"command": "ls"}'}},
    ]
    _, message = streamed([chunk({"tool_calls": calls}, "tool_calls")])
    assert [(block.type, block.input) for block in message.content] == [
        ("tool_use", {"file_path": "/a"}),
        ("tool_use", {"command": "ls"}),
    ]


def test_a_late_fragment_of_an_earlier_tool_call_reaches_its_block():
    chunks = [
        chunk(tool_delta(0, '{"file_path": ', "call_a", "Read")),
        chunk(tool_delta(1, '{"command": "ls"}', "call_b", "Bash")),
        chunk(tool_delta(0, '"/a"}')),
        chunk({}, "tool_calls"),
    ]
    frames = stream_frames(chunks)
    late = events_of(frames)[-4]
    assert late == {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "input_json_delta", "partial_json": '"/a"}'},
    }
    assert [block.input for block in sdk_final_message(frames).content] == [{"file_path": "/a"}, {"command": "ls"}]


def test_it_streams_text_after_a_tool_call_in_a_block_of_its_own():
    chunks = [chunk(tool_delta(0, "{}", "call_a", "Read")), chunk({"content": "done"}), chunk({}, "tool_calls")]
    _, message = streamed(chunks)
    assert [block.type for block in message.content] == ["tool_use", "text"]


def test_it_streams_a_length_stop():
    _, message = streamed([chunk({"content": "The beginning of a long"}), chunk({}, "length")])
    assert message.stop_reason == "max_tokens"
    assert message.content[0].to_dict() == {"type": "text", "text": "The beginning of a long"}


def test_it_streams_the_usage_the_chunks_reported():
    usage = {"prompt_tokens": 30, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 20}}
    _, message = streamed([chunk({"content": "ok"}), chunk({}, "stop"), chunk(usage=usage)])
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (10, 20)
    assert message.usage.output_tokens == 4


def test_the_callers_usage_wins_over_the_chunks():
    usage = {"prompt_tokens": 30, "completion_tokens": 4}
    final = Usage(prompt_tokens=31, completion_tokens=9, cache_write_1h_tokens=11)
    _, message = streamed([chunk({"content": "ok"}, "stop", usage)], final)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 9)
    assert message.usage.cache_creation_input_tokens == 11


def test_it_streams_an_empty_answer():
    events, message = streamed([chunk({"role": "assistant"}), chunk({}, "stop")])
    assert [event["type"] for event in events] == ["message_start", "ping", "message_delta", "message_stop"]
    assert message.content == []


def test_finish_is_idempotent():
    stream = MessagesStream(MODEL, MESSAGE_ID, 1)
    stream.start()
    stream.feed(chunk({"content": "x"}))
    assert len(stream.finish()) == 3
    assert stream.finish() == []


def test_nothing_is_streamed_after_finish():
    stream = MessagesStream(MODEL, MESSAGE_ID, 1)
    stream.finish()
    assert stream.feed(chunk({"content": "late"})) == []


def test_an_error_event_makes_the_sdk_raise():
    stream = MessagesStream(MODEL, MESSAGE_ID, 1)
    frames = stream.start() + stream.feed(chunk({"content": "par"})) + [stream.error("upstream went away")]
    assert events_of(frames)[-1] == {"type": "error", "error": {"type": "api_error", "message": "upstream went away"}}
    with pytest.raises(anthropic.APIStatusError, match="upstream went away"):
        sdk_final_message(frames)


def test_it_keeps_the_streamed_text_for_counting():
    stream = MessagesStream(MODEL, MESSAGE_ID, 1)
    stream.feed(chunk({"reasoning_content": "hmm "}))
    stream.feed(chunk({"content": "answer "}))
    stream.feed(chunk(tool_delta(0, '{"a": 1}', "call_1", "Bash")))
    assert stream.text == 'hmm answer Bash{"a": 1}'


# --- counting the prompt ---


def test_it_measures_every_text_the_model_reads():
    body = request(
        system=[{"type": "text", "text": "sys"}],
        messages=[
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {"c": 1}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "out"}]},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_BASE64}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}},
                ],
            },
        ],
        tools=[{"name": "Bash", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
    )
    texts = ["sys", "hello", 'Bash{"c":1}', "out", "doc", '{"name":"Bash","input_schema":{"type":"object"}}']
    overhead = 3 + 3 * len(body["messages"])
    assert prompt_tokens(body, utf8_bytes) == overhead + sum(len(text) for text in texts)


def test_claude_codes_prompt_is_bounded_by_its_bytes():
    body = claude_code_request()
    bound = prompt_tokens(body, utf8_bytes)
    assert 0 < bound < len(orjson.dumps(body))
    assert prompt_tokens(body, lambda text: 1) == 3 + 3 * len(body["messages"]) + 1 + 8 + len(body["tools"])
