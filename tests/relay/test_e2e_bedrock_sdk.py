"""AWS Bedrock end to end: the real server, the official `openai` and `anthropic` SDKs, a fake Bedrock that checks
every SigV4 signature with botocore's signer. Quota is checked to the unit against the formula."""

import json
import math

import anthropic
import openai
import pytest

from billing.models import ApiKey
from channels_app.models import Channel
from tests.support.factories import make_channel, make_key
from tests.support.fakes import anthropic_upstream as claude
from tests.support.fakes import bedrock_upstream as fake
from tests.support.fakes.bedrock_upstream import Behaviour, FakeBedrock
from tests.support.fakes.recording import served
from tests.support.live_server import LiveGateway, consume_logs, set_prices

pytestmark = pytest.mark.django_db(transaction=True)

fake_bedrock_server, fake_bedrock = served(FakeBedrock, "fake_bedrock")

CLAUDE, CLAUDE_ID = "claude-sonnet-4-5", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
LLAMA = "us.meta.llama3-3-70b-instruct-v1:0"
KEY = f"{fake.ACCESS_KEY}|{fake.SECRET_KEY}|{fake.REGION}"
MODEL_RATIO, COMPLETION_RATIO = 2.0, 3.0
CACHE_RATIO, CREATE_CACHE_RATIO, CREATE_CACHE_RATIO_1H = 0.1, 1.25, 2.0
RATIOS = {
    "model_ratio": MODEL_RATIO,
    "completion_ratio": COMPLETION_RATIO,
    "cache_ratio": CACHE_RATIO,
    "create_cache_ratio": CREATE_CACHE_RATIO,
    "create_cache_ratio_1h": CREATE_CACHE_RATIO_1H,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "lookup_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CLAUDE_CODE = {
    "max_tokens": 1024,
    "system": [{"type": "text", "text": "Answer briefly.", "cache_control": {"type": "ephemeral"}}],
    "metadata": {"user_id": "user_0123_session_xyz"},
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in Lisbon?"}]}],
}
BETA = "context-1m-2025-08-07,interleaved-thinking-2025-05-14"


def quota_of(prompt: int, completion: int, read: int = 0, write_5m: int = 0, write_1h: int = 0) -> int:
    uncached = prompt - read - write_5m - write_1h
    cached = read * CACHE_RATIO + write_5m * CREATE_CACHE_RATIO + write_1h * CREATE_CACHE_RATIO_1H
    return math.ceil(round((uncached + cached + completion * COMPLETION_RATIO) * MODEL_RATIO, 6))


CACHE_LANES = (fake.CACHE_READ_TOKENS, fake.CACHE_WRITE_5M_TOKENS, fake.CACHE_WRITE_1H_TOKENS)
CONVERSE_CACHED = quota_of(fake.INPUT_TOKENS + sum(CACHE_LANES), fake.OUTPUT_TOKENS, *CACHE_LANES)
CONVERSE_PLAIN = quota_of(fake.INPUT_TOKENS, fake.OUTPUT_TOKENS)
CLAUDE_LANES = (claude.CACHE_READ_TOKENS, claude.CACHE_WRITE_5M_TOKENS, claude.CACHE_WRITE_1H_TOKENS)
CLAUDE_CACHED = quota_of(claude.INPUT_TOKENS + sum(CLAUDE_LANES), claude.OUTPUT_TOKENS, *CLAUDE_LANES)
CLAUDE_PLAIN = quota_of(claude.PROMPT_TOKENS, claude.OUTPUT_TOKENS, claude.CACHE_READ_TOKENS)


@pytest.fixture
def world(alice, access_token, fake_bedrock):
    mapping = {CLAUDE: CLAUDE_ID}
    make_channel(fake_bedrock.url, [CLAUDE, LLAMA], key=KEY, type="bedrock", model_mapping=mapping, name="bedrock")
    token, key = make_key(alice)
    server = LiveGateway()
    set_prices(server.url, access_token, [CLAUDE, LLAMA], **RATIOS)
    yield server, key, token
    server.stop()


def used(token: ApiKey) -> int:
    token.refresh_from_db()
    return token.used_quota


def test_openai_sdk_on_converse_whole_streamed_and_with_tools_billed_to_the_unit(world, fake_bedrock):
    server, key, token = world
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    fake_bedrock.script.append(Behaviour(cached=True))
    whole = client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "hi"}], max_tokens=50)
    assert whole.choices[0].message.content == fake.CONVERSE_REPLY
    assert whole.usage.prompt_tokens_details.cached_tokens == fake.CACHE_READ_TOKENS
    fake_bedrock.script.append(Behaviour(cached=True))
    stream = client.chat.completions.create(
        model=LLAMA,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fake.CONVERSE_REPLY
    assert chunks[-1].usage.completion_tokens == fake.OUTPUT_TOKENS
    fake_bedrock.script.append(Behaviour(tool_call=True))
    question = {"role": "user", "content": "Weather in Lisbon?"}
    called = client.chat.completions.create(model=LLAMA, messages=[question], tools=[WEATHER])
    call = called.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        fake.TOOL_ID,
        fake.TOOL_NAME,
        {"city": "Lisbon"},
    )
    result = {"role": "tool", "tool_call_id": call.id, "content": "21C"}
    answer = client.chat.completions.create(
        model=LLAMA, messages=[question, called.choices[0].message, result], tools=[WEATHER]
    )
    assert answer.choices[0].message.content == fake.CONVERSE_REPLY
    sent = fake_bedrock.requests[-1]
    assert sent.path == f"/model/{LLAMA}/converse"
    assert sent.body["messages"][-1]["content"] == [
        {"toolResult": {"toolUseId": fake.TOOL_ID, "content": [{"text": "21C"}]}}
    ]
    assert sent.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={fake.ACCESS_KEY}/")
    logs = consume_logs(4)
    assert [log.quota for log in logs] == [CONVERSE_CACHED, CONVERSE_CACHED, CONVERSE_PLAIN, CONVERSE_PLAIN]
    assert (logs[1].cache_read_tokens, logs[1].cache_write_5m_tokens, logs[1].cache_write_1h_tokens) == CACHE_LANES
    assert used(token) == 2 * CONVERSE_CACHED + 2 * CONVERSE_PLAIN


def test_openai_sdk_on_claude_through_invoke_model(world, fake_bedrock):
    server, key, token = world
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    fake_bedrock.script.append(Behaviour(cached=True))
    whole = client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "hi"}])
    assert whole.choices[0].message.content == claude.REPLY and whole.model == CLAUDE
    stream = client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == claude.REPLY
    assert [request.path for request in fake_bedrock.requests] == [
        f"/model/{CLAUDE_ID}/invoke",
        f"/model/{CLAUDE_ID}/invoke-with-response-stream",
    ]
    assert fake_bedrock.requests[0].body["anthropic_version"] == "bedrock-2023-05-31"
    whole_log, streamed_log = consume_logs(2)
    assert (whole_log.quota, streamed_log.quota) == (CLAUDE_CACHED, CLAUDE_PLAIN)
    assert used(token) == CLAUDE_CACHED + CLAUDE_PLAIN


def test_anthropic_sdk_messages_are_passed_through_to_bedrock_claude(world, fake_bedrock):
    server, key, token = world
    client = anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)
    fake_bedrock.script.append(Behaviour(cached=True))
    message = client.messages.create(model=CLAUDE, extra_headers={"anthropic-beta": BETA}, **CLAUDE_CODE)
    assert message.content[0].text == claude.REPLY
    assert message.usage.cache_creation_input_tokens == claude.CACHE_WRITE_5M_TOKENS + claude.CACHE_WRITE_1H_TOKENS
    forwarded = fake_bedrock.requests[-1]
    assert forwarded.path == f"/model/{CLAUDE_ID}/invoke"
    assert forwarded.body == {
        "anthropic_version": "bedrock-2023-05-31",
        **CLAUDE_CODE,
        "anthropic_beta": BETA.split(","),
    }
    fake_bedrock.script.append(Behaviour(tool_call=True))
    with client.messages.stream(model=CLAUDE, **CLAUDE_CODE) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[1].input == {"city": "Lisbon"}
    assert events[0] == "message_start" and "content_block_delta" in events
    assert fake_bedrock.requests[-1].path == f"/model/{CLAUDE_ID}/invoke-with-response-stream"
    whole_log, streamed_log = consume_logs(2)
    assert whole_log.content.startswith("anthropic messages, passed through")
    assert (whole_log.quota, streamed_log.quota) == (CLAUDE_CACHED, CLAUDE_PLAIN)
    assert used(token) == CLAUDE_CACHED + CLAUDE_PLAIN


def test_a_wrong_secret_disables_its_channel_and_the_api_key_channel_serves(
    alice, access_token, fake_bedrock, transactional_db
):
    wrong = make_channel(
        fake_bedrock.url, [LLAMA], key=f"{fake.ACCESS_KEY}|wrong-secret|{fake.REGION}", type="bedrock", priority=10
    )
    make_channel(fake_bedrock.url, [LLAMA], key=f"{fake.API_KEY}|{fake.REGION}", type="bedrock", name="api-key")
    _, key = make_key(alice)
    server = LiveGateway()
    try:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
        answer = client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == fake.CONVERSE_REPLY
    finally:
        server.stop()
    signed, bearer = fake_bedrock.requests
    assert signed.headers["Authorization"].startswith("AWS4-HMAC-SHA256")
    assert bearer.headers["Authorization"] == f"Bearer {fake.API_KEY}"
    wrong.refresh_from_db()
    assert wrong.status == Channel.Status.AUTO_DISABLED
    assert "signature we calculated does not match" in wrong.status_reason and "wrong-secret" not in wrong.status_reason
