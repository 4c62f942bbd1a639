"""OpenAI Responses <-> OpenAI chat conversion (relay.formats.responses_convert), checked against the official
`openai` SDK: what ResponsesStream and from_chat produce is fed to the SDK's own parsing and accumulation."""

import copy

import httpx2
import openai
import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from relay.adaptors.base import Usage
from relay.errors import RelayError
from relay.formats.responses_convert import (
    ResponsesStream,
    from_chat,
    prompt_tokens,
    to_chat,
    usage_object,
)
from relay.tokenizer import utf8_bytes
from tests.support.chat_shapes import chunk, completion, tool_delta

MODEL = "gpt-5-codex"
RESPONSE_ID = "resp_gateway01"
CREATED_AT = 1_790_000_000
PNG_URL = "data:image/png;base64,iVBORw0KGgo="
PDF_DATA = "data:application/pdf;base64,JVBERi0xLjQ="
SHELL_TOOL = {
    "type": "function",
    "name": "shell",
    "description": "Runs a shell command and returns its output.",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {"command": {"type": "array", "items": {"type": "string"}}, "workdir": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}
PLAN_TOOL = {
    "type": "function",
    "name": "update_plan",
    "description": "Updates the task plan.",
    "parameters": {"type": "object", "properties": {"plan": {"type": "array"}}, "required": ["plan"]},
}
# What Codex CLI sends on its second turn: the environment, the task, its own earlier reasoning, a call and its
# output, with tools, reasoning, caching and streaming settings.
CODEX_REQUEST = {
    "model": MODEL,
    "instructions": "You are Codex, a coding agent.",
    "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Sandbox: read-only."}]},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "<environment_context>cwd: /repo</environment_context>"},
                {"type": "input_text", "text": "Why does the test fail?"},
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Run the tests."}],
            "encrypted_content": "gAAAAB...",
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "shell",
            "arguments": '{"command":["pytest","-q"]}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "1 failed: assert 1 == 2"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "The assert is wrong."}]},
        {"role": "user", "content": "Fix it."},
    ],
    "tools": [SHELL_TOOL, PLAN_TOOL],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "0199a1b2-conversation",
    "text": {"verbosity": "medium"},
}
EVENTS = TypeAdapter(ResponseStreamEvent)


def request(**fields) -> dict:
    return {"model": MODEL, "input": "hi", **fields}


def converted_messages(*items: dict, **fields) -> list[dict]:
    return to_chat(request(input=list(items), **fields))["messages"]


def rejection(body: dict) -> RelayError:
    with pytest.raises(RelayError) as raised:
        to_chat(body)
    assert raised.value.status == 400
    assert raised.value.type == "invalid_request_error"
    return raised.value


def function_call(call_id: str, name: str = "shell", arguments: str = "{}") -> dict:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def call_output(call_id: str, output: object) -> dict:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def chat_call(call_id: str, name: str = "shell", arguments: str = "{}") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# --- request: Responses -> OpenAI chat ---


def test_it_converts_codexs_request():
    assert to_chat(CODEX_REQUEST) == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are Codex, a coding agent."},
            {"role": "system", "content": "Sandbox: read-only."},
            {
                "role": "user",
                "content": "<environment_context>cwd: /repo</environment_context>\n\nWhy does the test fail?",
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [chat_call("call_1", "shell", '{"command":["pytest","-q"]}')],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "1 failed: assert 1 == 2"},
            {"role": "assistant", "content": "The assert is wrong."},
            {"role": "user", "content": "Fix it."},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "shell",
                    "parameters": SHELL_TOOL["parameters"],
                    "description": "Runs a shell command and returns its output.",
                    "strict": False,
                },
            },
            {
                "type": "function",
                "function": {
                    "name": "update_plan",
                    "parameters": PLAN_TOOL["parameters"],
                    "description": "Updates the task plan.",
                },
            },
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning_effort": "medium",
        "prompt_cache_key": "0199a1b2-conversation",
    }


def test_it_leaves_the_callers_body_unchanged():
    body = copy.deepcopy(CODEX_REQUEST)
    to_chat(body)
    assert body == CODEX_REQUEST


def test_it_takes_input_as_a_string():
    assert to_chat(request(input="hello", instructions="Be brief."))["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]


def test_it_takes_messages_without_a_type_and_maps_developer_to_system():
    messages = converted_messages(
        {"role": "developer", "content": "Use tabs."},
        {"role": "system", "content": [{"type": "input_text", "text": "Be"}, {"type": "input_text", "text": "kind."}]},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    )
    assert messages == [
        {"role": "system", "content": "Use tabs."},
        {"role": "system", "content": "Be\n\nkind."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]


def test_it_leaves_out_empty_instructions():
    assert to_chat(request(instructions=""))["messages"] == [{"role": "user", "content": "hi"}]


def test_it_converts_images_with_their_detail():
    content = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": PNG_URL, "detail": "low"},
        {"type": "input_image", "image_url": "https://example.com/cat.jpg"},
    ]
    assert converted_messages({"role": "user", "content": content}) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        }
    ]


def test_it_converts_an_inline_file():
    content = [{"type": "input_file", "filename": "spec.pdf", "file_data": PDF_DATA}]
    assert converted_messages({"role": "user", "content": content})[0]["content"] == [
        {"type": "file", "file": {"filename": "spec.pdf", "file_data": PDF_DATA}}
    ]


def test_it_merges_consecutive_function_calls_into_one_assistant_message():
    messages = converted_messages(
        {"role": "user", "content": "Read both."},
        function_call("call_a", "read", '{"path":"/a"}'),
        {"type": "reasoning", "id": "rs_1", "summary": []},
        function_call("call_b", "read", '{"path":"/b"}'),
        call_output("call_a", "A"),
        call_output("call_b", "B"),
    )
    assert messages == [
        {"role": "user", "content": "Read both."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [chat_call("call_a", "read", '{"path":"/a"}'), chat_call("call_b", "read", '{"path":"/b"}')],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "A"},
        {"role": "tool", "tool_call_id": "call_b", "content": "B"},
    ]


def test_function_calls_join_the_assistant_text_before_them():
    messages = converted_messages(
        {"role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        function_call("call_a"),
        call_output("call_a", "ok"),
    )
    assert messages[0] == {"role": "assistant", "content": "Let me look.", "tool_calls": [chat_call("call_a")]}


def test_images_in_function_outputs_follow_every_output_in_a_user_message():
    messages = converted_messages(
        function_call("call_a", "view_image"),
        function_call("call_b", "view_image"),
        call_output(
            "call_a", [{"type": "input_text", "text": "image "}, {"type": "input_image", "image_url": PNG_URL}]
        ),
        call_output("call_b", [{"type": "input_text", "text": "second"}]),
        {"role": "user", "content": "Compare them."},
    )
    assert messages[1:] == [
        {"role": "tool", "tool_call_id": "call_a", "content": "image "},
        {"role": "tool", "tool_call_id": "call_b", "content": "second"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]},
        {"role": "user", "content": "Compare them."},
    ]


def test_it_drops_reasoning_items():
    messages = converted_messages(
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB..."},
    )
    assert messages == [{"role": "user", "content": "hi"}]


def test_it_gives_a_tool_without_parameters_an_empty_object_schema():
    tools = to_chat(request(tools=[{"type": "function", "name": "now", "strict": True}]))["tools"]
    assert tools == [
        {
            "type": "function",
            "function": {"name": "now", "parameters": {"type": "object", "properties": {}}, "strict": True},
        }
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "name": "shell"}, {"type": "function", "function": {"name": "shell"}}),
    ],
)
def test_it_maps_tool_choice(choice, expected):
    assert to_chat(request(tools=[SHELL_TOOL], tool_choice=choice))["tool_choice"] == expected


def test_it_sends_no_tool_settings_without_tools():
    chat = to_chat(request(tools=[], tool_choice="required", parallel_tool_calls=False))
    assert "tools" not in chat and "tool_choice" not in chat and "parallel_tool_calls" not in chat


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "web_search"},
        {"type": "web_search_preview"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {"type": "code_interpreter", "container": {"type": "auto"}},
        {"type": "computer_use_preview", "display_width": 1024, "display_height": 768, "environment": "linux"},
        {"type": "image_generation"},
        {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.com"},
        {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
        {"type": "local_shell"},
    ],
)
def test_it_refuses_tools_other_than_functions(tool):
    error = rejection(request(tools=[SHELL_TOOL, tool]))
    assert error.param == "tools"
    assert repr(tool["type"]) in error.message and "function tools only" in error.message


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"previous_response_id": "resp_earlier"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.0"),
    ],
)
def test_it_refuses_server_side_conversation_state(fields, param):
    error = rejection(request(**fields))
    assert error.param == param
    assert "the gateway keeps no conversation state" in error.message


def test_it_refuses_a_stored_prompt_and_background_responses():
    assert rejection(request(prompt={"id": "pmpt_1"})).param == "prompt"
    assert rejection(request(background=True)).param == "background"
    assert "background" not in to_chat(request(background=False))


@pytest.mark.parametrize("effort", ["minimal", "low", "medium", "high"])
def test_it_maps_reasoning_effort(effort):
    assert to_chat(request(reasoning={"effort": effort, "summary": "auto"}))["reasoning_effort"] == effort


def test_it_sends_no_effort_without_one():
    assert "reasoning_effort" not in to_chat(request(reasoning={"summary": "auto"}))


def test_it_maps_sampling_limits_and_identity():
    chat = to_chat(
        request(max_output_tokens=512, temperature=0.2, top_p=0.9, user="alice", prompt_cache_key="conversation-1")
    )
    assert (chat["max_tokens"], chat["temperature"], chat["top_p"]) == (512, 0.2, 0.9)
    assert (chat["user"], chat["prompt_cache_key"]) == ("alice", "conversation-1")


def test_a_safety_identifier_becomes_user():
    assert to_chat(request(safety_identifier="hashed-alice"))["user"] == "hashed-alice"


def test_it_does_not_forward_what_only_a_responses_upstream_knows():
    chat = to_chat(request(store=True, metadata={"k": "v"}, include=["reasoning.encrypted_content"], truncation="auto"))
    assert chat == {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def test_it_maps_a_json_schema_format():
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    text = {"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}, "verbosity": "low"}
    assert to_chat(request(text=text))["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }


def test_it_maps_json_object_and_plain_text_formats():
    assert to_chat(request(text={"format": {"type": "json_object"}}))["response_format"] == {"type": "json_object"}
    assert "response_format" not in to_chat(request(text={"format": {"type": "text"}}))


def test_it_asks_for_usage_in_a_stream_only():
    assert to_chat(request(stream=True))["stream_options"] == {"include_usage": True}
    chat = to_chat(request(stream=False))
    assert chat["stream"] is False and "stream_options" not in chat


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"input": 42}, "input", "a string or a list of items"),
        ({"input": []}, "input", "non-empty"),
        ({"input": ""}, "input", "non-empty"),
        ({"input": ["hi"]}, "input.0", "must be an object"),
        ({"input": [{"content": "hi"}]}, "input.0", "needs a type"),
        ({"input": [{"role": "tool", "content": "hi"}]}, "input.0.role", "unknown role 'tool'"),
        ({"input": [{"role": "user", "content": 7}]}, "input.0.content", "a string or a list"),
        ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input.0.content.0", "input_audio"),
        ({"input": [{"role": "system", "content": [{"type": "input_image"}]}]}, "input.0.content.0", "text part"),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input.0.content.0.image_url", "URL"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input.0.type", "web_search_call"),
        ({"input": [{"type": "function_call", "name": "shell"}]}, "input.0.call_id", "call_id"),
        ({"input": [{"type": "function_call", "call_id": "c"}]}, "input.0.name", "name"),
        ({"input": [function_call("c") | {"arguments": {"a": 1}}]}, "input.0.arguments", "JSON string"),
        ({"input": [call_output("c", 5)]}, "input.0.output", "a string or a list"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input.0.call_id", "call_id"),
        ({"instructions": ["be brief"]}, "instructions", "a string"),
        ({"max_output_tokens": 0}, "max_output_tokens", "positive integer"),
        ({"max_output_tokens": "100"}, "max_output_tokens", "positive integer"),
        ({"stream": "yes"}, "stream", "true or false"),
        ({"tools": {"type": "function"}}, "tools", "a list"),
        ({"tools": ["shell"]}, "tools.0", "an object"),
        ({"tools": [{"type": "function"}]}, "tools.0.name", "a name"),
        ({"tools": [{"type": "function", "name": "f", "parameters": []}]}, "tools.0.parameters", "JSON Schema"),
        ({"tools": [SHELL_TOOL], "tool_choice": "any"}, "tool_choice", "tool_choice must be"),
        ({"tools": [SHELL_TOOL], "tool_choice": {"type": "web_search"}}, "tool_choice", "tool_choice must be"),
        ({"reasoning": {"effort": 3}}, "reasoning.effort", "a string"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format", "json_schema"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format", "a schema object"),
    ],
)
def test_it_refuses_an_invalid_request(fields, param, words):
    error = rejection(request(**fields))
    assert (error.param, words in error.message) == (param, True), error.message


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "input_image", "file_id": "file-1"}, "input.0.content.0.file_id"),
        ({"type": "input_file", "file_id": "file-1"}, "input.0.content.0.file_id"),
        ({"type": "input_file", "file_url": "https://example.com/a.pdf"}, "input.0.content.0.file_url"),
    ],
)
def test_it_refuses_files_kept_in_openais_storage(part, param):
    error = rejection(request(input=[{"role": "user", "content": [part]}]))
    assert error.param == param
    assert "not supported on this channel" in error.message


# --- answer: OpenAI chat -> a response object ---


def sdk_client(content: bytes, content_type: str, sent_bodies: list | None = None) -> openai.OpenAI:
    """The official SDK, answered by a transport that returns `content` for POST /v1/responses and keeps the
    bodies the SDK sent in `sent_bodies`."""

    def answer(sent: httpx2.Request) -> httpx2.Response:
        assert (sent.method, sent.url.path) == ("POST", "/v1/responses")
        if sent_bodies is not None:
            sent_bodies.append(orjson.loads(sent.read()))
        return httpx2.Response(200, content=content, headers={"content-type": content_type})

    http_client = httpx2.Client(transport=httpx2.MockTransport(answer))
    return openai.OpenAI(api_key="sk-test", base_url="http://gateway.test/v1", http_client=http_client)


def sdk_response(answer: dict) -> Response:
    """What `responses.create` gives the app for `answer`, after checking that the SDK's model validates it."""
    Response.model_validate(answer)
    return sdk_client(orjson.dumps(answer), "application/json").responses.create(model=MODEL, input="hi")


def answered(message: dict, finish_reason: str = "stop", client_request: dict | None = None) -> Response:
    usage = Usage(prompt_tokens=10, completion_tokens=5)
    return sdk_response(
        from_chat(completion(message, finish_reason), client_request or request(), RESPONSE_ID, CREATED_AT, usage)
    )


def test_it_answers_text_as_the_sdk_reads_it():
    response = answered({"content": "Hello!"})

    assert (response.id, response.object, response.created_at, response.model) == (
        RESPONSE_ID,
        "response",
        CREATED_AT,
        MODEL,
    )
    assert (response.status, response.incomplete_details, response.error) == ("completed", None, None)
    assert response.output_text == "Hello!"
    [item] = response.output
    assert (item.type, item.role, item.status, item.id.startswith("msg_")) == (
        "message",
        "assistant",
        "completed",
        True,
    )
    assert [part.type for part in item.content] == ["output_text"]
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (10, 5, 15)


def test_it_echoes_the_requests_settings():
    client_request = request(
        instructions="Be brief.",
        tools=[SHELL_TOOL],
        tool_choice={"type": "function", "name": "shell"},
        temperature=0.3,
        top_p=0.8,
        parallel_tool_calls=False,
        max_output_tokens=300,
        metadata={"ticket": "42"},
        reasoning={"effort": "low", "summary": "auto"},
        text={"format": {"type": "json_object"}},
        store=True,
    )
    answer = from_chat(completion({"content": "{}"}), client_request, RESPONSE_ID, CREATED_AT, Usage(1, 1))
    response = sdk_response(answer)

    assert response.instructions == "Be brief."
    assert [tool.to_dict() for tool in response.tools] == [SHELL_TOOL]
    assert response.tool_choice.to_dict() == {"type": "function", "name": "shell"}
    assert (response.temperature, response.top_p, response.parallel_tool_calls) == (0.3, 0.8, False)
    assert (response.max_output_tokens, response.metadata) == (300, {"ticket": "42"})
    assert (response.reasoning.effort, response.text.format.type) == ("low", "json_object")
    assert (answer["previous_response_id"], answer["store"]) == (None, False)  # a converted response is not stored


def test_it_echoes_defaults_for_what_the_request_left_out():
    response = answered({"content": "ok"})
    assert (response.instructions, response.tools, response.tool_choice) == (None, [], "auto")
    assert (response.parallel_tool_calls, response.metadata, response.text.format.type) == (True, {}, "text")


def test_it_answers_reasoning_and_function_calls():
    calls = [chat_call("call_1", "shell", '{"command":["ls"]}'), chat_call("call_2", "update_plan", '{"plan":[]}')]
    response = answered({"content": None, "reasoning_content": "List first.", "tool_calls": calls}, "tool_calls")

    reasoning, first, second = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert [part.to_dict() for part in reasoning.summary] == [{"type": "summary_text", "text": "List first."}]
    assert [(item.type, item.call_id, item.name, item.arguments) for item in (first, second)] == [
        ("function_call", "call_1", "shell", '{"command":["ls"]}'),
        ("function_call", "call_2", "update_plan", '{"plan":[]}'),
    ]
    assert first.id.startswith("fc_") and first.id != second.id
    assert (response.status, response.output_text) == ("completed", "")


def test_a_function_call_round_trip_converts_what_the_sdk_sends_back():
    """The app sends the first response's output items back with its function's output, as OpenAI's guide shows."""
    calls = [chat_call("call_1", "shell", '{"command":["ls"]}')]
    message = {"content": "Listing.", "reasoning_content": "ls first.", "tool_calls": calls}
    answer = from_chat(completion(message, "tool_calls"), request(), RESPONSE_ID, CREATED_AT, Usage(10, 5))
    sent: list[dict] = []
    client = sdk_client(orjson.dumps(answer), "application/json", sent)
    first = client.responses.create(model=MODEL, input="What is here?", tools=[SHELL_TOOL])
    output = {"type": "function_call_output", "call_id": first.output[-1].call_id, "output": "a.txt"}
    question = {"role": "user", "content": "What is here?"}
    client.responses.create(model=MODEL, input=[question, *first.output, output], tools=[SHELL_TOOL])

    assert to_chat(sent[1])["messages"] == [
        {"role": "user", "content": "What is here?"},
        {"role": "assistant", "content": "Listing.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
    ]


def test_it_mints_a_call_id_when_the_upstream_sent_none():
    response = answered({"tool_calls": [{"type": "function", "function": {"name": "shell"}}]}, "tool_calls")
    [call] = response.output
    assert call.call_id.startswith("call_") and call.arguments == "{}"


def test_it_answers_a_refusal():
    response = answered({"content": None, "refusal": "I can't help with that."})
    [item] = response.output
    assert [part.to_dict() for part in item.content] == [{"type": "refusal", "refusal": "I can't help with that."}]
    assert response.output_text == ""


@pytest.mark.parametrize(
    ("finish_reason", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_a_cut_answer_is_incomplete(finish_reason, reason):
    response = answered({"content": "The beginning of a long"}, finish_reason)
    assert (response.status, response.incomplete_details.reason) == ("incomplete", reason)
    assert (response.output[0].status, response.output_text) == ("incomplete", "The beginning of a long")


def test_the_billed_usage_wins_over_the_answers():
    usage = Usage(prompt_tokens=100, completion_tokens=40, cache_read_tokens=60, reasoning_tokens=25)
    answer = from_chat(completion({"content": "ok"}), request(), RESPONSE_ID, CREATED_AT, usage)
    response = sdk_response(answer)
    assert response.usage.input_tokens_details.cached_tokens == 60
    assert response.usage.output_tokens_details.reasoning_tokens == 25
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (100, 40, 140)


def test_it_answers_an_empty_answer_with_no_items():
    response = answered({"content": ""})
    assert (response.output, response.output_text, response.status) == ([], "", "completed")


def test_it_reports_usage_with_cache_writes():
    usage = Usage(
        1000, 50, cache_read_tokens=600, cache_write_5m_tokens=100, cache_write_1h_tokens=200, reasoning_tokens=9
    )
    assert usage_object(usage) == {
        "input_tokens": 1000,
        "input_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 300},
        "output_tokens": 50,
        "output_tokens_details": {"reasoning_tokens": 9},
        "total_tokens": 1050,
    }


# --- stream: OpenAI chunks -> Responses events ---


def stream_frames(chunks: list[dict], usage: Usage | None = None, client_request: dict | None = None) -> list[bytes]:
    stream = ResponsesStream(client_request or request(stream=True), RESPONSE_ID, CREATED_AT)
    frames = stream.start()
    for item in chunks:
        frames += stream.feed(item)
    return frames + stream.finish(usage)


def events_of(frames: list[bytes]) -> list[dict]:
    """Each frame's data, after checking its framing, that the SDK's event union validates it, and that the
    sequence numbers count from 0."""
    events = []
    for frame in frames:
        head, data, end = frame.split(b"\n", 2)
        event = orjson.loads(data.removeprefix(b"data: "))
        assert head == b"event: " + event["type"].encode() and data.startswith(b"data: ") and end == b"\n"
        EVENTS.validate_python(event)
        events.append(event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    return events


def assert_grammar(events: list[dict]) -> None:
    """created, in_progress, then items in output_index order, each opened, written and closed before the next,
    then one ending event."""
    kinds = [event["type"] for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete", "response.failed")
    assert all(event["response"]["id"] == RESPONSE_ID for event in (events[0], events[1], events[-1]))
    open_item, next_index = None, 0
    for event in events[2:-1]:
        if event["type"] == "response.output_item.added":
            assert open_item is None and event["output_index"] == next_index
            open_item, next_index = event["item"]["id"], next_index + 1
        elif event["type"] == "response.output_item.done":
            assert event["item"]["id"] == open_item and event["output_index"] == next_index - 1
            open_item = None
        else:
            assert (event["item_id"], event["output_index"]) == (open_item, next_index - 1)
    assert open_item is None


def sdk_events(frames: list[bytes]) -> tuple[list, Response | None]:
    """The events `responses.stream` gives the app, and its `get_final_response()` when the stream completed."""
    client = sdk_client(b"".join(frames), "text/event-stream")
    with client.responses.stream(model=MODEL, input="hi") as stream:
        events = list(stream)
        final = stream.get_final_response() if events[-1].type == "response.completed" else None
    return events, final


def streamed(chunks: list[dict], usage: Usage | None = None) -> tuple[list[dict], Response]:
    """The events written and the response the SDK ends with: get_final_response(), or the response of the
    response.incomplete event."""
    frames = stream_frames(chunks, usage)
    events = events_of(frames)
    assert_grammar(events)
    sdk_stream, final = sdk_events(frames)
    return events, final or sdk_stream[-1].response


def test_it_streams_text():
    chunks = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo!"})]
    events, response = streamed([*chunks, chunk({}, "stop")], Usage(prompt_tokens=12, completion_tokens=3))

    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert [event["delta"] for event in events if event["type"] == "response.output_text.delta"] == ["Hel", "lo!"]
    assert events[6]["text"] == "Hello!"
    assert (response.id, response.status, response.output_text) == (RESPONSE_ID, "completed", "Hello!")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 3)
    assert response.output[0].id == events[2]["item"]["id"]


def test_it_echoes_the_request_from_the_first_event():
    client_request = request(stream=True, instructions="Be brief.", tools=[SHELL_TOOL], max_output_tokens=99)
    created = events_of(stream_frames([chunk({"content": "ok"}, "stop")], client_request=client_request))[0]
    response = created["response"]
    assert (response["model"], response["instructions"], response["tools"]) == (MODEL, "Be brief.", [SHELL_TOOL])
    assert (response["created_at"], response["max_output_tokens"], response["usage"]) == (CREATED_AT, 99, None)


def test_it_streams_reasoning_then_text():
    chunks = [
        chunk({"reasoning_content": "Let me "}),
        chunk({"reasoning_content": "think."}),
        chunk({"content": "Four."}),
        chunk({}, "stop"),
    ]
    events, response = streamed(chunks)

    reasoning, message = response.output
    assert (reasoning.type, [part.text for part in reasoning.summary]) == ("reasoning", ["Let me think."])
    assert (message.type, response.output_text) == ("message", "Four.")
    kinds = [event["type"] for event in events]
    assert kinds[2:9] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    assert events[6]["text"] == "Let me think."


def test_it_streams_a_function_call_with_arguments_in_many_chunks():
    arguments = '{"command": ["pytest", "-q", "tests/test_app.py"], "workdir": "/repo"}'
    pieces = [arguments[start : start + 5] for start in range(0, len(arguments), 5)]
    chunks = [chunk({"content": "Running the tests."}), chunk(tool_delta(0, "", "call_1", "shell"))]
    chunks += [chunk(tool_delta(0, piece)) for piece in pieces]
    events, response = streamed([*chunks, chunk({}, "tool_calls")])

    message, call = response.output
    assert response.output_text == "Running the tests."
    assert (call.type, call.call_id, call.name, call.arguments, call.status) == (
        "function_call",
        "call_1",
        "shell",
        arguments,
        "completed",
    )
    added = next(
        event for event in events if event["type"] == "response.output_item.added" and event["output_index"] == 1
    )
    assert added["item"] | {"id": None} == {
        "type": "function_call",
        "id": None,
        "call_id": "call_1",
        "name": "shell",
        "arguments": "",
        "status": "in_progress",
    }
    assert [event["delta"] for event in events if event["type"] == "response.function_call_arguments.delta"] == pieces
    [done] = [event for event in events if event["type"] == "response.function_call_arguments.done"]
    assert (done["arguments"], done["item_id"]) == (arguments, call.id)


def test_it_streams_two_parallel_function_calls():
    chunks = [
        chunk(tool_delta(0, '{"path', "call_a", "read")),
        chunk(tool_delta(0, '": "/a"}')),
        chunk(tool_delta(1, "", "call_b", "read")),
        chunk(tool_delta(1, '{"path"')),
        chunk(tool_delta(1, ': "/b"}')),
        chunk({}, "tool_calls"),
    ]
    events, response = streamed(chunks)

    assert [(item.call_id, item.arguments) for item in response.output] == [
        ("call_a", '{"path": "/a"}'),
        ("call_b", '{"path": "/b"}'),
    ]
    assert [event["output_index"] for event in events if event["type"] == "response.output_item.added"] == [0, 1]


def test_it_streams_whole_function_calls_given_in_one_chunk():
    calls = [
        {"index": 0, "id": "call_a", "function": {"name": "read", "arguments": '{"path": "/a"}'}},
        {"index": 1, "id": "call_b", "function": {"name": "shell", "arguments": '{"command": ["ls"]}'}},
    ]
    _, response = streamed([chunk({"tool_calls": calls}, "tool_calls")])
    assert [(item.name, item.arguments) for item in response.output] == [
        ("read", '{"path": "/a"}'),
        ("shell", '{"command": ["ls"]}'),
    ]


def test_a_late_fragment_of_an_earlier_function_call_reaches_the_final_response():
    chunks = [
        chunk(tool_delta(0, '{"path": ', "call_a", "read")),
        chunk(tool_delta(1, '{"command": ["ls"]}', "call_b", "shell")),
        chunk(tool_delta(0, '"/a"}')),
        chunk({}, "tool_calls"),
    ]
    frames = stream_frames(chunks)
    late = events_of(frames)[-4]
    assert (late["type"], late["output_index"], late["delta"]) == ("response.function_call_arguments.delta", 0, '"/a"}')
    _, response = sdk_events(frames)
    assert [item.arguments for item in response.output] == ['{"path": "/a"}', '{"command": ["ls"]}']


def test_it_streams_text_after_a_function_call_in_an_item_of_its_own():
    chunks = [chunk(tool_delta(0, "{}", "call_a", "read")), chunk({"content": "done"}), chunk({}, "tool_calls")]
    _, response = streamed(chunks)
    assert [item.type for item in response.output] == ["function_call", "message"]


def test_it_streams_a_refusal():
    _, response = streamed([chunk({"refusal": "I can't "}), chunk({"refusal": "help."}), chunk({}, "stop")])
    [message] = response.output
    assert [part.to_dict() for part in message.content] == [{"type": "refusal", "refusal": "I can't help."}]


@pytest.mark.parametrize(
    ("finish_reason", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_it_streams_a_cut_answer_as_incomplete(finish_reason, reason):
    events, response = streamed([chunk({"content": "The beginning of a long"}), chunk({}, finish_reason)])
    assert events[-1]["type"] == "response.incomplete"
    assert (response.status, response.incomplete_details.reason) == ("incomplete", reason)
    assert (response.output_text, response.output[0].status) == ("The beginning of a long", "incomplete")


def test_it_streams_the_usage_the_chunks_reported():
    usage = {"prompt_tokens": 30, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 20}}
    _, response = streamed([chunk({"content": "ok"}), chunk({}, "stop"), chunk(usage=usage)])
    assert (response.usage.input_tokens, response.usage.input_tokens_details.cached_tokens) == (30, 20)
    assert response.usage.output_tokens == 4


def test_the_callers_usage_wins_over_the_chunks():
    usage = {"prompt_tokens": 30, "completion_tokens": 4}
    final = Usage(prompt_tokens=31, completion_tokens=9, reasoning_tokens=5)
    _, response = streamed([chunk({"content": "ok"}, "stop", usage)], final)
    assert (response.usage.input_tokens, response.usage.output_tokens) == (31, 9)
    assert response.usage.output_tokens_details.reasoning_tokens == 5


def test_it_streams_an_empty_answer():
    events, response = streamed([chunk({"role": "assistant"}), chunk({}, "stop")])
    assert [event["type"] for event in events] == ["response.created", "response.in_progress", "response.completed"]
    assert (response.output, response.usage.total_tokens) == ([], 0)


def test_finish_is_idempotent():
    stream = ResponsesStream(request(), RESPONSE_ID, CREATED_AT)
    stream.start()
    stream.feed(chunk({"content": "x"}))
    assert len(stream.finish()) == 4
    assert stream.finish() == []
    assert stream.failed("late") == []


def test_nothing_is_streamed_after_finish():
    stream = ResponsesStream(request(), RESPONSE_ID, CREATED_AT)
    stream.finish()
    assert stream.feed(chunk({"content": "late"})) == []


def test_a_broken_stream_ends_with_response_failed():
    stream = ResponsesStream(request(stream=True), RESPONSE_ID, CREATED_AT)
    frames = stream.start() + stream.feed(chunk({"content": "par"})) + stream.failed("upstream went away")
    assert stream.finish() == []

    failed = events_of(frames)[-1]
    assert failed["type"] == "response.failed"
    assert (failed["response"]["status"], failed["response"]["usage"]) == ("failed", None)
    assert failed["response"]["error"] == {"code": "server_error", "message": "upstream went away"}
    events, final = sdk_events(frames)
    assert (events[-1].type, events[-1].response.error.message, final) == (
        "response.failed",
        "upstream went away",
        None,
    )


def test_it_keeps_the_streamed_text_for_counting():
    stream = ResponsesStream(request(), RESPONSE_ID, CREATED_AT)
    stream.feed(chunk({"reasoning_content": "hmm "}))
    stream.feed(chunk({"content": "answer "}))
    stream.feed(chunk(tool_delta(0, '{"a": 1}', "call_1", "shell")))
    assert stream.text == 'hmm answer shell{"a": 1}'


# --- counting the prompt ---


def test_it_measures_every_text_the_model_reads():
    body = request(
        instructions="sys",
        input=[
            {
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}, {"type": "input_image", "image_url": PNG_URL}],
            },
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "not sent"}]},
            function_call("c", "shell", '{"c":1}'),
            call_output("c", [{"type": "input_text", "text": "out"}]),
            {"role": "assistant", "content": [{"type": "output_text", "text": "done"}]},
        ],
        tools=[{"type": "function", "name": "shell", "parameters": {"type": "object"}}],
    )
    texts = [
        "sys",
        "hello",
        "shell",
        '{"c":1}',
        "out",
        "done",
        '[{"type":"function","name":"shell","parameters":{"type":"object"}}]',
    ]
    overhead = 3 + 3 * 5  # the reply primer, the instructions and four items sent
    assert prompt_tokens(body, utf8_bytes) == overhead + sum(len(text) for text in texts)


def test_it_measures_input_given_as_a_string():
    assert prompt_tokens(request(input="hello"), utf8_bytes) == 3 + 3 + 5


def test_codexs_prompt_is_bounded_by_its_bytes():
    bound = prompt_tokens(CODEX_REQUEST, utf8_bytes)
    assert 0 < bound < len(orjson.dumps(CODEX_REQUEST))
    # primer, instructions, six items sent (not the reasoning), their eight texts, the tools
    assert prompt_tokens(CODEX_REQUEST, lambda text: 1) == 3 + (3 + 1) + 3 * 6 + 8 + 1
