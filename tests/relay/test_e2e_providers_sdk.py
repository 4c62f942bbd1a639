"""Claude and Gemini channels end to end: the real server, the official SDK, fakes of each wire format."""

import json

import openai
import pytest

from tests.support.factories import make_channel, make_key
from tests.support.fakes import anthropic_upstream as claude
from tests.support.fakes import gemini_upstream as gemini
from tests.support.fakes.openai_upstream import start
from tests.support.live_server import LiveGateway, consume_logs

pytestmark = pytest.mark.django_db(transaction=True)

CLAUDE = "claude-3-5-sonnet-20241022"
GEMINI = "gemini-1.5-pro-latest"
PNG = (  # a 1x1 PNG
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "lookup_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi! How can I help?"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": PNG}},
        ],
    },
]


@pytest.fixture(scope="module")
def fakes():
    fake_claude, fake_gemini = claude.FakeAnthropic(), gemini.FakeGemini()
    start(fake_claude)
    start(fake_gemini)
    return fake_claude, fake_gemini


@pytest.fixture
def sdk(alice, fakes):
    fake_claude, fake_gemini = fakes
    fake_claude.reset()
    fake_gemini.reset()
    make_channel(fake_claude.url, models=[CLAUDE], key=claude.API_KEY, type="anthropic", name="claude")
    make_channel(fake_gemini.url, models=[GEMINI], key=gemini.API_KEY, type="gemini", name="gemini")
    _, key = make_key(alice)
    server = LiveGateway()
    yield openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0), fake_claude, fake_gemini
    server.stop()


def tool_round_trip(client: openai.OpenAI, model: str) -> openai.types.chat.ChatCompletion:
    """Ask, get a tool call, answer it, get the final text."""
    ask = [{"role": "user", "content": "Weather in Lisbon?"}]
    first = client.chat.completions.create(model=model, messages=ask, tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "lookup_weather" and json.loads(call.function.arguments)["city"] == "Lisbon"
    follow_up = ask + [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
    ]
    return client.chat.completions.create(model=model, messages=follow_up, tools=[WEATHER])


def test_claude_through_the_sdk(sdk):
    client, fake, _ = sdk
    answer = client.chat.completions.create(model=CLAUDE, messages=CONVERSATION)
    assert answer.choices[0].message.content == claude.REPLY
    sent = fake.requests[-1].body
    assert sent["system"] == "Answer briefly." and sent["messages"][-1]["content"][1]["type"] == "image"
    assert answer.usage.prompt_tokens == claude.PROMPT_TOKENS

    stream = list(
        client.chat.completions.create(
            model=CLAUDE, messages=CONVERSATION, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == claude.REPLY
    assert stream[-1].usage.completion_tokens == claude.OUTPUT_TOKENS

    fake.script.append(claude.Behaviour(tool_call=True))
    final = tool_round_trip(client, CLAUDE)
    assert final.choices[0].message.content == claude.REPLY
    assert fake.requests[-1].body["messages"][-1]["content"][0]["type"] == "tool_result"

    fake.script.append(
        claude.Behaviour(
            status=400,
            body={
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "messages: roles must alternate"},
            },
        )
    )
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=CLAUDE, messages=CONVERSATION)
    assert "roles must alternate" in raised.value.message and claude.API_KEY not in raised.value.message

    logs = consume_logs(4, model=CLAUDE)
    assert (logs[0].prompt_tokens, logs[0].completion_tokens) == (claude.PROMPT_TOKENS, claude.OUTPUT_TOKENS)


def test_gemini_through_the_sdk(sdk):
    client, _, fake = sdk
    answer = client.chat.completions.create(model=GEMINI, messages=CONVERSATION)
    assert answer.choices[0].message.content == gemini.REPLY
    sent = fake.requests[-1]
    assert sent.body["systemInstruction"]["parts"][0]["text"] == "Answer briefly."
    assert any("inlineData" in part for part in sent.body["contents"][-1]["parts"])
    assert sent.query["key"] == gemini.API_KEY

    stream = list(
        client.chat.completions.create(
            model=GEMINI, messages=CONVERSATION, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == gemini.REPLY
    assert stream[-1].usage.prompt_tokens == gemini.PROMPT_TOKENS

    fake.script.append(gemini.Behaviour(function_call=True))
    final = tool_round_trip(client, GEMINI)
    assert final.choices[0].message.content == gemini.REPLY
    assert any("functionResponse" in part for part in fake.requests[-1].body["contents"][-1]["parts"])

    fake.script.append(gemini.Behaviour(status=503, body=gemini.UNAVAILABLE))
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model=GEMINI, messages=CONVERSATION)
    assert gemini.OVERLOADED_MESSAGE in raised.value.message and gemini.API_KEY not in raised.value.message

    logs = consume_logs(4, model=GEMINI)
    assert (logs[0].prompt_tokens, logs[0].completion_tokens) == (gemini.PROMPT_TOKENS, gemini.COMPLETION_TOKENS)
