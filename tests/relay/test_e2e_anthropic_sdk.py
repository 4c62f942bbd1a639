"""The Anthropic Messages API end to end: the real server, the official `anthropic` SDK, Claude Code's request
shapes, against fake Anthropic (passed through byte for byte), Vertex (Claude passed through), OpenAI and Gemini
(converted) upstreams. Quota is checked to the unit against the formula."""

import json
import math

import anthropic
import httpx
import httpx2
import pytest

from billing.models import ApiKey, Log
from tests.support.factories import make_channel, make_key
from tests.support.fakes import anthropic_upstream as claude
from tests.support.fakes import gemini_upstream as gemini
from tests.support.fakes import openai_upstream
from tests.support.fakes.recording import Behaviour as VertexBehaviour
from tests.support.live_server import LiveGateway, consume_logs, set_prices, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CLAUDE, VERTEX_CLAUDE, GPT, GEMINI = "claude-sonnet-4-5", "claude-opus-4-1", "gpt-4.1", "gemini-2.5-flash"
MODEL_RATIO, COMPLETION_RATIO = 2.0, 3.0
CACHE_RATIO, CREATE_CACHE_RATIO, CREATE_CACHE_RATIO_1H = 0.1, 1.25, 2.0
RATIOS = {
    "model_ratio": MODEL_RATIO,
    "completion_ratio": COMPLETION_RATIO,
    "cache_ratio": CACHE_RATIO,
    "create_cache_ratio": CREATE_CACHE_RATIO,
    "create_cache_ratio_1h": CREATE_CACHE_RATIO_1H,
}
BETA = "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"

# What Claude Code sends: the system prompt as cached blocks, tools with input_schema, thinking, a user id.
SYSTEM = [
    {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
    {"type": "text", "text": "Answer briefly.", "cache_control": {"type": "ephemeral"}},
]
TOOLS = [
    {
        "name": "lookup_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
CLAUDE_CODE = {
    "max_tokens": 4096,
    "system": SYSTEM,
    "tools": TOOLS,
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "metadata": {"user_id": "user_0123_account_abc_session_xyz"},
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in Lisbon?"}]}],
}


def quota_of(prompt: int, completion: int, read: int = 0, write_5m: int = 0, write_1h: int = 0) -> int:
    uncached = prompt - read - write_5m - write_1h
    cached = read * CACHE_RATIO + write_5m * CREATE_CACHE_RATIO + write_1h * CREATE_CACHE_RATIO_1H
    return math.ceil(round((uncached + cached + completion * COMPLETION_RATIO) * MODEL_RATIO, 6))


CLAUDE_CACHED = quota_of(
    claude.PROMPT_TOKENS + claude.CACHE_WRITE_5M_TOKENS + claude.CACHE_WRITE_1H_TOKENS,
    claude.OUTPUT_TOKENS,
    claude.CACHE_READ_TOKENS,
    claude.CACHE_WRITE_5M_TOKENS,
    claude.CACHE_WRITE_1H_TOKENS,
)
GPT_QUOTA = quota_of(openai_upstream.PROMPT_TOKENS, len(openai_upstream.REPLY_PIECES))


class Sent:
    """The bodies the SDK sent, as bytes, and its anthropic-version (an httpx2 request hook)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.version = ""

    def __call__(self, request: httpx2.Request) -> None:
        self.bodies.append(request.read())
        self.version = request.headers["anthropic-version"]


@pytest.fixture
def world(alice, access_token, format_fakes, fake_vertex, account_json):
    fakes = format_fakes
    make_channel(fakes["anthropic"].url, models=[CLAUDE], key=claude.API_KEY, type="anthropic", name="claude")
    make_channel(fakes["openai"].url, models=[GPT], name="openai")
    make_channel(fakes["gemini"].url, models=[GEMINI], key=gemini.API_KEY, type="gemini", name="gemini")
    make_channel(fake_vertex.url, models=[VERTEX_CLAUDE], key=account_json, type="vertex", name="vertex")
    token, key = make_key(alice)
    server = LiveGateway()
    set_prices(server.url, access_token, [CLAUDE, VERTEX_CLAUDE, GPT, GEMINI], **RATIOS)
    sent = Sent()
    http = httpx2.Client(event_hooks={"request": [sent]})
    client = anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0, http_client=http)
    yield client, fakes, fake_vertex, sent, token, server
    server.stop()


def used(token: ApiKey) -> int:
    token.refresh_from_db()
    return token.used_quota


def test_claude_code_request_is_passed_through_byte_for_byte(world):
    client, fakes, _, sent, token, server = world
    fake = fakes["anthropic"]
    fake.script.append(claude.Behaviour(cache_writes=True))
    raw = client.messages.with_raw_response.create(model=CLAUDE, extra_headers={"anthropic-beta": BETA}, **CLAUDE_CODE)
    assert raw.http_response.content == fake.answers[-1]  # the upstream's bytes, unchanged
    message = raw.parse()
    assert message.content[0].text == claude.REPLY and message.usage.cache_read_input_tokens == claude.CACHE_READ_TOKENS
    forwarded = fake.requests[-1]
    assert forwarded.path == "/v1/messages" and forwarded.raw == sent.bodies[-1]
    assert forwarded.headers["anthropic-beta"] == BETA and forwarded.headers["anthropic-version"] == sent.version
    assert forwarded.headers["x-api-key"] == claude.API_KEY
    (log,) = consume_logs(1)
    assert (log.cache_read_tokens, log.cache_write_5m_tokens, log.cache_write_1h_tokens) == (
        claude.CACHE_READ_TOKENS,
        claude.CACHE_WRITE_5M_TOKENS,
        claude.CACHE_WRITE_1H_TOKENS,
    )
    assert log.quota == CLAUDE_CACHED == used(token)
    assert log.content.startswith("anthropic messages, passed through")
    bearer = {"Authorization": f"Bearer {client.api_key}"}  # Claude Code's ANTHROPIC_AUTH_TOKEN; no version sent
    answer = httpx.post(f"{server.url}/v1/messages", json={"model": CLAUDE, **CLAUDE_CODE}, headers=bearer)
    assert answer.status_code == 200 and answer.content == fake.answers[-1]
    assert (
        fake.requests[-1].headers["anthropic-version"] == "2023-06-01"
        and "anthropic-beta" not in fake.requests[-1].headers
    )


def test_passed_through_stream_reaches_the_sdk_unchanged(world):
    client, fakes, _, sent, token, _ = world
    fake = fakes["anthropic"]
    fake.script.append(claude.Behaviour(cache_writes=True))
    with client.messages.with_streaming_response.create(model=CLAUDE, stream=True, **CLAUDE_CODE) as response:
        relayed = b"".join(response.iter_bytes())
    assert relayed == fake.answers[-1] and fake.requests[-1].raw == sent.bodies[-1]
    fake.script.append(claude.Behaviour(tool_call=True))
    with client.messages.stream(model=CLAUDE, **CLAUDE_CODE) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [block.type for block in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"city": "Lisbon"}
    first, second = consume_logs(2)
    assert first.quota == CLAUDE_CACHED and first.is_stream
    plain = quota_of(claude.PROMPT_TOKENS, claude.OUTPUT_TOKENS, claude.CACHE_READ_TOKENS)
    assert second.quota == plain and used(token) == CLAUDE_CACHED + plain


def test_claude_on_vertex_is_passed_through(world):
    client, _, fake_vertex, sent, _, _ = world
    fake_vertex.script.append(VertexBehaviour(cached=True))
    message = client.messages.create(model=VERTEX_CLAUDE, extra_headers={"anthropic-beta": BETA}, **CLAUDE_CODE)
    assert message.content[0].text == claude.REPLY
    forwarded = fake_vertex.requests[-1]
    assert forwarded.path.endswith(f"/publishers/anthropic/models/{VERTEX_CLAUDE}:rawPredict")
    without_model = {key: value for key, value in json.loads(sent.bodies[-1]).items() if key != "model"}
    assert forwarded.body == {"anthropic_version": "vertex-2023-10-16", **without_model}
    assert forwarded.headers["anthropic-beta"] == BETA
    with client.messages.stream(model=VERTEX_CLAUDE, **CLAUDE_CODE) as stream:
        assert stream.get_final_message().content[0].text == claude.REPLY
    assert fake_vertex.requests[-1].path.endswith(":streamRawPredict")
    assert consume_logs(2)[0].quota == CLAUDE_CACHED


def test_openai_channel_converted_with_tools(world):
    client, fakes, _, _, token, _ = world
    fake = fakes["openai"]
    fake.script.append(openai_upstream.Behaviour(tool_call=True))
    asked = client.messages.create(model=GPT, **CLAUDE_CODE)
    assert asked.stop_reason == "tool_use" and asked.model == GPT
    (call,) = asked.content
    assert (call.type, call.name, call.input) == ("tool_use", "lookup_weather", {"city": "Lisbon"})
    sent = fake.requests[-1].body
    assert sent["messages"][0]["role"] == "system" and "Answer briefly." in json.dumps(sent["messages"][0])
    assert sent["tools"][0]["function"]["parameters"] == TOOLS[0]["input_schema"]
    assert sent["max_tokens"] == CLAUDE_CODE["max_tokens"]
    follow_up = [
        *CLAUDE_CODE["messages"],
        {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21C"}]},
    ]
    answer = client.messages.create(model=GPT, **{**CLAUDE_CODE, "messages": follow_up})
    assert answer.content[0].text == openai_upstream.REPLY and answer.stop_reason == "end_turn"
    assert answer.usage.input_tokens == openai_upstream.PROMPT_TOKENS
    tool_message = fake.requests[-1].body["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == call.id
    fake.script.append(openai_upstream.Behaviour(tool_call=True))
    with client.messages.stream(model=GPT, **CLAUDE_CODE) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].input == {"city": "Lisbon"}
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}
    with client.messages.stream(model=GPT, **CLAUDE_CODE) as stream:
        assert stream.get_final_text() == openai_upstream.REPLY
    logs = consume_logs(4)
    assert [log.quota for log in logs] == [GPT_QUOTA] * 4 and used(token) == 4 * GPT_QUOTA
    assert all(log.content.startswith("anthropic messages, converted to chat") for log in logs)


def test_gemini_channel_converted(world):
    client, fakes, _, _, token, _ = world
    with client.messages.stream(model=GEMINI, **CLAUDE_CODE) as stream:
        final = stream.get_final_message()
    assert final.content[-1].text == gemini.REPLY and final.usage.output_tokens == gemini.COMPLETION_TOKENS
    fakes["gemini"].script.append(gemini.Behaviour(function_call=True))
    called = client.messages.create(model=GEMINI, **CLAUDE_CODE)
    assert called.stop_reason == "tool_use" and called.content[-1].input == {"city": "Lisbon"}
    streamed, whole = consume_logs(2)
    assert streamed.quota == quota_of(gemini.PROMPT_TOKENS, gemini.COMPLETION_TOKENS)
    assert whole.quota == quota_of(whole.prompt_tokens, whole.completion_tokens) and whole.completion_tokens > 0
    assert used(token) == streamed.quota + whole.quota


def test_count_tokens_is_free(world):
    client, fakes, _, _, token, _ = world
    counted = client.messages.count_tokens(model=CLAUDE, messages=CLAUDE_CODE["messages"], system=SYSTEM, tools=TOOLS)
    assert counted.input_tokens == claude.COUNTED_TOKENS
    assert fakes["anthropic"].requests[-1].path == "/v1/messages/count_tokens"
    local = client.messages.count_tokens(model=GPT, messages=CLAUDE_CODE["messages"], system=SYSTEM, tools=TOOLS)
    assert 20 < local.input_tokens < 200
    assert not fakes["openai"].requests and used(token) == 0 and not Log.objects.exists()


def test_errors_in_anthropic_shape(world, alice):
    client, fakes, _, _, _, server = world
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=server.url, api_key="sk-wrong", max_retries=0).messages.create(
            model=CLAUDE, **CLAUDE_CODE
        )
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("no-such-model")
    assert client.models.retrieve(CLAUDE).id == CLAUDE
    assert {model.id for model in client.models.list()} == {CLAUDE, VERTEX_CLAUDE, GPT, GEMINI}
    _, limited = make_key(alice, model_limits=[GPT], name="gpt-only")
    with pytest.raises(anthropic.PermissionDeniedError):
        anthropic.Anthropic(base_url=server.url, api_key=limited, max_retries=0).messages.create(
            model=CLAUDE, **CLAUDE_CODE
        )
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.create(model=CLAUDE, **{**CLAUDE_CODE, "max_tokens": 0})
    fakes["anthropic"].script.append(claude.Behaviour(status=529, body=claude.OVERLOADED))
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(model=CLAUDE, **CLAUDE_CODE)


def test_stream_broken_mid_way_ends_with_an_error_event(world):
    client, fakes, _, _, token, _ = world
    fakes["anthropic"].script.append(claude.Behaviour(error_after=2))
    with (
        pytest.raises(anthropic.APIStatusError, match="Overloaded"),
        client.messages.stream(model=CLAUDE, **CLAUDE_CODE) as stream,
    ):
        for _ in stream:
            pass
    fakes["openai"].script.append(openai_upstream.Behaviour(die_after=2))
    with pytest.raises(anthropic.APIStatusError), client.messages.stream(model=GPT, **CLAUDE_CODE) as stream:
        for _ in stream:
            pass
    logs = consume_logs(2)
    assert all(log.content.split(": ")[1].startswith("upstream failed mid-stream") for log in logs)
    assert used(token) == sum(log.quota for log in logs) > 0


def test_failover_from_a_passed_through_channel_to_a_converted_one(world):
    client, fakes, _, _, token, _ = world
    model = "claude-failover"
    make_channel(fakes["anthropic"].url, models=[model], key=claude.API_KEY, type="anthropic", priority=1)
    make_channel(fakes["openai"].url, models=[model], name="backup")
    wait_until(lambda: model in {listed.id for listed in client.models.list()})
    fakes["anthropic"].script.append(
        claude.Behaviour(status=500, body={"type": "error", "error": {"type": "api_error"}})
    )
    answer = client.messages.create(model=model, **CLAUDE_CODE)
    assert answer.content[0].text == openai_upstream.REPLY
    assert [request.path for request in fakes["anthropic"].requests] == ["/v1/messages"]
    (log,) = consume_logs(1)
    assert log.content.startswith("anthropic messages, converted to chat") and log.quota == used(token)
    assert (log.prompt_tokens, log.completion_tokens) == (
        openai_upstream.PROMPT_TOKENS,
        len(openai_upstream.REPLY_PIECES),
    )
