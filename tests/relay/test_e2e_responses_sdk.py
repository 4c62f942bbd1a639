"""OpenAI's Responses API end to end: the real server and the official `openai` SDK, as Codex CLI speaks it,
against fake OpenAI and Azure Responses upstreams (passed through byte for byte, the responses they store
reachable by their creator only) and fake Anthropic and Gemini upstreams (converted). Quota is checked to the
unit against the formula."""

import json
import math

import httpx
import openai
import pytest

from billing.models import ApiKey, Log
from relay.models import StoredResponse
from tests.support.factories import make_channel, make_key
from tests.support.fakes import anthropic_upstream as claude
from tests.support.fakes import gemini_upstream as gemini
from tests.support.fakes import responses_upstream as fake_responses
from tests.support.fakes.openai_upstream import start
from tests.support.fakes.responses_upstream import FakeResponses
from tests.support.live_server import LiveGateway, consume_logs, set_prices

pytestmark = pytest.mark.django_db(transaction=True)

GPT, STICKY, AZURE, DATED, CLAUDE, GEMINI = "gpt-5", "gpt-5-sticky", "gpt-4.1", "gpt-4.1-dated", "claude-x", "gemini-x"
MODEL_RATIO, COMPLETION_RATIO, CACHE_RATIO = 2.0, 3.0, 0.1
DEPLOYMENT = "gpt-41"  # Azure deployments have no dots
DATED_VERSION = "2025-04-01-preview"
TOOLS = [
    {
        "type": "function",
        "name": "lookup_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
# What Codex CLI sends: instructions, input items, function tools, reasoning, no storage of its own.
CODEX = {
    "instructions": "You are Codex, a coding agent.",
    "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Lisbon?"}]}],
    "reasoning": {"effort": "medium"},
    "max_output_tokens": 2048,
}


def quota_of(prompt: int, completion: int, cached: int = 0) -> int:
    return math.ceil(round((prompt - cached + cached * CACHE_RATIO + completion * COMPLETION_RATIO) * MODEL_RATIO, 6))


PASSED_QUOTA = quota_of(fake_responses.INPUT_TOKENS, fake_responses.OUTPUT_TOKENS, fake_responses.CACHED_TOKENS)


@pytest.fixture(scope="module")
def fakes() -> dict:
    anthropic_fake, gemini_fake = claude.FakeAnthropic(), gemini.FakeGemini()
    start(anthropic_fake)
    start(gemini_fake)
    names = ("openai", "other", "azure", "dated")
    return {name: FakeResponses(name).start() for name in names} | {"anthropic": anthropic_fake, "gemini": gemini_fake}


@pytest.fixture
def world(alice, bob, access_token, fakes):
    for name in ("openai", "other", "azure", "dated"):
        fakes[name].reset()
    for name in ("anthropic", "gemini"):
        fakes[name].script.clear()
        fakes[name].requests.clear()
    make_channel(fakes["openai"].url, models=[GPT, STICKY], name="openai")
    make_channel(fakes["other"].url, models=[STICKY], name="other")
    make_channel(fakes["azure"].url, models=[AZURE], key="azure-upstream-secret", type="azure", name="azure")
    make_channel(
        fakes["dated"].url,
        models=[DATED],
        key="azure-upstream-secret",
        type="azure",
        config={"api_version": DATED_VERSION},
        model_mapping={DATED: AZURE},
    )
    make_channel(fakes["anthropic"].url, models=[CLAUDE], key=claude.API_KEY, type="anthropic", name="claude")
    make_channel(fakes["gemini"].url, models=[GEMINI], key=gemini.API_KEY, type="gemini", name="gemini")
    token, key = make_key(alice)
    _, other_key = make_key(bob)
    server = LiveGateway()
    set_prices(
        server.url,
        access_token,
        [GPT, STICKY, AZURE, DATED, CLAUDE, GEMINI],
        model_ratio=MODEL_RATIO,
        completion_ratio=COMPLETION_RATIO,
        cache_ratio=CACHE_RATIO,
    )
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    other = openai.OpenAI(base_url=f"{server.url}/v1", api_key=other_key, max_retries=0)
    yield client, other, fakes, token, server
    server.stop()


def used(token: ApiKey) -> int:
    token.refresh_from_db()
    return token.used_quota


def test_a_response_is_passed_through_byte_for_byte(world):
    client, _, fakes, token, _ = world
    fake = fakes["openai"]
    raw = client.responses.with_raw_response.create(model=GPT, tools=TOOLS, **CODEX)
    assert raw.http_response.content == fake.answers[-1]
    response = raw.parse()
    assert response.output[0].type == "function_call" and response.output[0].arguments == fake_responses.ARGUMENTS
    assert response.usage.input_tokens_details.cached_tokens == fake_responses.CACHED_TOKENS
    forwarded = fake.requests[-1]
    assert forwarded.path == "/v1/responses" and forwarded.headers["Authorization"] == "Bearer sk-upstream-secret"
    assert forwarded.body == {"model": GPT, "tools": TOOLS, **CODEX}
    assert raw.http_request.read() == forwarded.raw
    (log,) = consume_logs(1)
    assert (log.prompt_tokens, log.completion_tokens, log.cache_read_tokens, log.reasoning_tokens) == (
        fake_responses.INPUT_TOKENS,
        fake_responses.OUTPUT_TOKENS,
        fake_responses.CACHED_TOKENS,
        fake_responses.REASONING_TOKENS,
    )
    assert log.quota == PASSED_QUOTA == used(token)
    assert log.content.startswith("openai responses, passed through")


def test_a_stream_is_passed_through_unchanged(world):
    client, _, fakes, token, _ = world
    fake = fakes["openai"]
    with client.responses.with_streaming_response.create(model=GPT, stream=True, **CODEX) as response:
        relayed = b"".join(response.iter_bytes())
    assert relayed == fake.answers[-1]
    with client.responses.stream(model=GPT, **CODEX) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == fake_responses.REPLY
    assert client.responses.retrieve(final.id).output_text == fake_responses.REPLY  # its owner is known already
    logs = consume_logs(2)
    assert [log.quota for log in logs] == [PASSED_QUOTA] * 2 and all(log.is_stream for log in logs)
    assert used(token) == 2 * PASSED_QUOTA


def test_azure_channels_get_the_v1_path_or_their_dated_api_version(world):
    client, _, fakes, token, _ = world
    assert client.responses.create(model=AZURE, **CODEX).output_text == fake_responses.REPLY
    sent = fakes["azure"].requests[-1]
    assert (sent.path, sent.query) == ("/openai/v1/responses", "")
    assert sent.headers["api-key"] == "azure-upstream-secret" and "Authorization" not in sent.headers
    assert sent.body["model"] == DEPLOYMENT
    with client.responses.stream(model=DATED, **CODEX) as stream:
        final = stream.get_final_response()
    sent = fakes["dated"].requests[-1]
    assert (sent.path, sent.query) == ("/openai/responses", f"api-version={DATED_VERSION}")
    assert sent.body["model"] == DEPLOYMENT
    items = client.responses.input_items.list(final.id)
    assert fakes["dated"].requests[-1].query == f"api-version={DATED_VERSION}"
    assert items.data[0].content[0].text == "Weather in Lisbon?"
    assert used(token) == 2 * PASSED_QUOTA


@pytest.mark.backend
def test_a_stored_response_is_reachable_by_its_creator_only(world):
    client, other, fakes, token, _ = world
    fake = fakes["openai"]
    created = client.responses.create(model=GPT, **CODEX)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.cancel(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_never_seen")
    requests_before = len(fake.requests)
    assert requests_before == 1  # none of those reached the upstream
    assert client.responses.retrieve(created.id).output_text == fake_responses.REPLY
    assert (fake.requests[-1].method, fake.requests[-1].path) == ("GET", f"/v1/responses/{created.id}")
    items = client.responses.input_items.list(created.id, limit=5, order="asc")
    assert fake.requests[-1].path == f"/v1/responses/{created.id}/input_items"
    assert fake.requests[-1].query == "limit=5&order=asc" and items.data[0].role == "user"
    assert client.responses.cancel(created.id).status == "cancelled"
    assert (fake.requests[-1].method, fake.requests[-1].path) == ("POST", f"/v1/responses/{created.id}/cancel")
    client.responses.delete(created.id)
    assert fake.requests[-1].method == "DELETE" and not StoredResponse.objects.filter(response_id=created.id).exists()
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    assert used(token) == PASSED_QUOTA and Log.objects.filter(type="consume").count() == 1  # those calls are free


@pytest.mark.backend
def test_previous_response_id_sticks_to_the_channel_that_stores_it(world):
    client, _, fakes, _, _ = world
    first = client.responses.create(model=STICKY, **CODEX)
    owner = "openai" if first.id.startswith("resp_openai") else "other"
    for _ in range(6):
        follow_up = client.responses.create(model=STICKY, previous_response_id=first.id, input="And tomorrow?")
        assert follow_up.id.startswith(f"resp_{owner}_")
    assert StoredResponse.objects.count() == 7


@pytest.mark.backend
def test_a_response_the_upstream_does_not_store_is_not_remembered(world):
    client, _, _, token, _ = world
    client.responses.create(model=GPT, store=False, **CODEX)
    with client.responses.stream(model=GPT, store=False, **CODEX) as stream:
        stream.get_final_response()
    assert not StoredResponse.objects.exists() and used(token) == 2 * PASSED_QUOTA


def test_streams_broken_mid_way(world):
    client, _, fakes, token, _ = world
    fakes["openai"].cut_after = 4
    with client.responses.stream(model=GPT, **CODEX) as stream:
        cut = list(stream)
    assert [event.type for event in cut][::4] == ["response.created", "error"]  # the fake's 4 events, then ours
    assert cut[-1].message == "upstream connection lost"
    fakes["anthropic"].script.append(claude.Behaviour(error_after=2))
    with client.responses.stream(model=CLAUDE, **CODEX) as stream:
        events = [event.type for event in stream]
    assert events[0] == "response.created" and events[-1] == "response.failed"
    logs = consume_logs(2)
    assert all(log.content.split(": ")[1].startswith("upstream failed mid-stream") for log in logs)
    assert used(token) == sum(log.quota for log in logs) > 0


def test_model_mapping_renames_the_model_only(world):
    client, _, fakes, _, _ = world
    client.responses.create(model=DATED, **CODEX)
    assert fakes["dated"].requests[-1].body == {**CODEX, "model": DEPLOYMENT}


def test_input_tokens_are_counted_locally_and_free(world):
    client, _, fakes, token, server = world
    answer = httpx.post(
        f"{server.url}/v1/responses/input_tokens",
        json={"model": GPT, **CODEX},
        headers={"Authorization": f"Bearer {client.api_key}"},
        timeout=60,  # the server's first local count builds the tokenizer's table
    )
    assert answer.status_code == 200
    counted = answer.json()
    assert counted["object"] == "response.input_tokens" and 5 < counted["input_tokens"] < 100
    assert not fakes["openai"].requests and used(token) == 0 and not Log.objects.exists()


def test_converted_for_an_anthropic_channel(world):
    client, _, fakes, token, _ = world
    answer = client.responses.create(model=CLAUDE, **CODEX)
    assert answer.output_text == claude.REPLY and answer.id.startswith("resp_")
    sent = fakes["anthropic"].requests[-1]
    assert sent.path == "/v1/messages" and sent.body["system"]
    fakes["anthropic"].script.append(claude.Behaviour(tool_call=True))
    called = client.responses.create(model=CLAUDE, tools=TOOLS, **CODEX)
    call = next(item for item in called.output if item.type == "function_call")
    assert (call.name, json.loads(call.arguments)) == ("lookup_weather", {"city": "Lisbon"})
    round_trip = [
        *CODEX["input"],
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "21C"},
    ]
    after = client.responses.create(model=CLAUDE, tools=TOOLS, **{**CODEX, "input": round_trip})
    assert after.output_text == claude.REPLY
    with client.responses.stream(model=CLAUDE, **CODEX) as stream:
        assert stream.get_final_response().output_text == claude.REPLY
    logs = consume_logs(4)
    assert all(log.content.startswith("openai responses, converted to chat") for log in logs)
    assert used(token) == sum(log.quota for log in logs) > 0
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(answer.id)  # nobody stores a converted response


def test_converted_for_a_gemini_channel(world):
    client, _, fakes, token, _ = world
    assert client.responses.create(model=GEMINI, **CODEX).output_text == gemini.REPLY
    fakes["gemini"].script.append(gemini.Behaviour(function_call=True))
    called = client.responses.create(model=GEMINI, tools=TOOLS, **CODEX)
    assert any(item.type == "function_call" and item.name == "lookup_weather" for item in called.output)
    with client.responses.stream(model=GEMINI, **CODEX) as stream:
        final = stream.get_final_response()
    assert final.output_text == gemini.REPLY
    logs = consume_logs(3)
    assert logs[-1].quota == quota_of(gemini.PROMPT_TOKENS, gemini.COMPLETION_TOKENS)
    assert used(token) == sum(log.quota for log in logs)


def test_errors_in_openai_shape(world):
    client, _, fakes, _, server = world
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong", max_retries=0).responses.create(
            model=GPT, **CODEX
        )
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", **CODEX)
    with pytest.raises(openai.BadRequestError, match="input"):
        client.responses.create(model=GPT, input=42)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=CLAUDE, tools=[{"type": "web_search"}], **CODEX)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=CLAUDE, previous_response_id="resp_elsewhere", **CODEX)
    assert not fakes["anthropic"].requests and not Log.objects.filter(type="consume").exists()
