"""Gemini's native API end to end: the real server and the official `google-genai` SDK, against fake Gemini
(passed through byte for byte), Vertex (Gemini passed through), OpenAI and Anthropic (converted) upstreams.
Quota is checked to the unit against the formula."""

import json
import math

import httpx
import pytest
from google import genai
from google.genai import errors, types

from billing.models import ApiKey, Log
from tests.support.factories import make_channel, make_key
from tests.support.fakes import anthropic_upstream as claude
from tests.support.fakes import gemini_upstream as gemini
from tests.support.fakes import openai_upstream
from tests.support.fakes.recording import Behaviour as VertexBehaviour
from tests.support.live_server import LiveGateway, consume_logs, set_prices

pytestmark = pytest.mark.django_db(transaction=True)

GEMINI, VERTEX_GEMINI, GPT, CLAUDE = "gemini-2.5-flash", "gemini-2.5-pro", "gpt-4.1", "claude-sonnet-4-5"
GEMINI_EMBEDDING, GPT_EMBEDDING = "gemini-embedding-001", "text-embedding-3-small"
MODELS = [GEMINI, VERTEX_GEMINI, GPT, CLAUDE, GEMINI_EMBEDDING, GPT_EMBEDDING]
MODEL_RATIO, COMPLETION_RATIO, CACHE_RATIO = 2.0, 3.0, 0.1
RATIOS = {"model_ratio": MODEL_RATIO, "completion_ratio": COMPLETION_RATIO, "cache_ratio": CACHE_RATIO}
CONFIG = types.GenerateContentConfig(
    system_instruction="Answer briefly.",
    temperature=0.5,
    max_output_tokens=256,
    stop_sequences=["END"],
    thinking_config=types.ThinkingConfig(thinking_budget=2048),
)
WEATHER = types.FunctionDeclaration(
    name=openai_upstream.TOOL_NAME,
    description="Weather for a city",
    parameters=types.Schema(
        type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]
    ),
)
TOOLS_CONFIG = types.GenerateContentConfig(
    tools=[types.Tool(function_declarations=[WEATHER])],
    automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
)
QUESTION = "Weather in Lisbon?"


def quota_of(prompt: int, completion: int, read: int = 0) -> int:
    return math.ceil(round((prompt - read + read * CACHE_RATIO + completion * COMPLETION_RATIO) * MODEL_RATIO, 6))


GEMINI_QUOTA = quota_of(gemini.PROMPT_TOKENS, gemini.COMPLETION_TOKENS)
GEMINI_CACHED = quota_of(gemini.PROMPT_TOKENS, gemini.COMPLETION_TOKENS, gemini.CACHED_TOKENS)
GPT_QUOTA = quota_of(openai_upstream.PROMPT_TOKENS, len(openai_upstream.REPLY_PIECES))


class Sent:
    """The bodies the SDK sent, as bytes (an httpx request hook)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> None:
        self.bodies.append(request.read())


@pytest.fixture
def world(alice, access_token, format_fakes, fake_vertex, account_json):
    fakes = format_fakes
    make_channel(fakes["gemini"].url, models=[GEMINI, GEMINI_EMBEDDING], key=gemini.API_KEY, type="gemini", name="g")
    make_channel(fake_vertex.url, models=[VERTEX_GEMINI], key=account_json, type="vertex", name="vertex")
    make_channel(fakes["openai"].url, models=[GPT, GPT_EMBEDDING], name="openai")
    make_channel(fakes["anthropic"].url, models=[CLAUDE], key=claude.API_KEY, type="anthropic", name="claude")
    token, key = make_key(alice)
    server = LiveGateway()
    set_prices(server.url, access_token, MODELS, **RATIOS)
    sent = Sent()
    options = types.HttpOptions(base_url=server.url, client_args={"event_hooks": {"request": [sent]}})
    client = genai.Client(api_key=key, http_options=options)
    yield client, fakes, fake_vertex, sent, token, server
    server.stop()


def used(token: ApiKey) -> int:
    token.refresh_from_db()
    return token.used_quota


def sse_bytes(events: list[dict]) -> bytes:
    return b"".join(f"data: {json.dumps(event)}\r\n\r\n".encode() for event in events)


def test_generate_content_is_passed_through_byte_for_byte(world):
    client, fakes, _, sent, token, server = world
    fake = fakes["gemini"]
    fake.script.append(gemini.Behaviour(cached=True))
    answer = client.models.generate_content(model=GEMINI, contents=QUESTION, config=CONFIG)
    assert answer.text == gemini.REPLY
    usage = answer.usage_metadata
    assert usage.cached_content_token_count == gemini.CACHED_TOKENS
    assert usage.thoughts_token_count == gemini.THOUGHT_TOKENS
    forwarded = fake.requests[-1]
    assert forwarded.path == f"/v1beta/models/{GEMINI}:generateContent" and forwarded.raw == sent.bodies[-1]
    assert forwarded.query["key"] == gemini.API_KEY
    (log,) = consume_logs(1)
    assert log.content.startswith("gemini generateContent, passed through: ")
    assert (log.prompt_tokens, log.completion_tokens) == (gemini.PROMPT_TOKENS, gemini.COMPLETION_TOKENS)
    assert (log.cache_read_tokens, log.reasoning_tokens) == (gemini.CACHED_TOKENS, gemini.THOUGHT_TOKENS)
    assert log.quota == GEMINI_CACHED == used(token)
    body = {"contents": [{"parts": [{"text": QUESTION}]}]}
    for path in (f"/v1beta/models/{GEMINI}:generateContent", f"/v1/models/{GEMINI}:generateContent"):
        raw = httpx.post(f"{server.url}{path}?key={client._api_client.api_key}", json=body)
        assert raw.status_code == 200 and raw.content == fake.answers[-1]


def test_stream_is_passed_through_unchanged(world):
    client, fakes, _, _, token, server = world
    chunks = list(client.models.generate_content_stream(model=GEMINI, contents=QUESTION, config=CONFIG))
    assert "".join(chunk.text for chunk in chunks) == gemini.REPLY
    assert chunks[-1].usage_metadata.thoughts_token_count == gemini.THOUGHT_TOKENS
    assert fakes["gemini"].requests[-1].query["alt"] == "sse"
    body = {"contents": [{"parts": [{"text": QUESTION}]}]}
    url = f"{server.url}/v1beta/models/{GEMINI}:streamGenerateContent?alt=sse"
    relayed = httpx.post(url, json=body, headers={"x-goog-api-key": client._api_client.api_key})
    assert relayed.content == sse_bytes(gemini.stream_events(gemini.Behaviour()))
    logs = consume_logs(2)
    assert all(log.is_stream and log.quota == GEMINI_QUOTA for log in logs) and used(token) == 2 * GEMINI_QUOTA
    assert logs[0].content.startswith("gemini generateContent, passed through: ")


def test_json_array_stream_without_alt_sse(world):
    client, fakes, _, _, token, server = world
    body = {"contents": [{"parts": [{"text": QUESTION}]}]}
    headers = {"Authorization": f"Bearer {client._api_client.api_key}"}
    passed = httpx.post(f"{server.url}/v1beta/models/{GEMINI}:streamGenerateContent", json=body, headers=headers)
    assert passed.status_code == 200
    assert json.loads(passed.content) == gemini.stream_events(gemini.Behaviour())
    converted = httpx.post(f"{server.url}/v1beta/models/{GPT}:streamGenerateContent", json=body, headers=headers)
    chunks = json.loads(converted.content)
    texts = [part["text"] for chunk in chunks for part in chunk["candidates"][0]["content"]["parts"]]
    assert "".join(texts) == openai_upstream.REPLY
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["promptTokenCount"] == openai_upstream.PROMPT_TOKENS
    assert [log.quota for log in consume_logs(2)] == [GEMINI_QUOTA, GPT_QUOTA]
    assert used(token) == GEMINI_QUOTA + GPT_QUOTA


def test_gemini_on_vertex_is_passed_through(world):
    client, _, fake_vertex, sent, token, _ = world
    fake_vertex.script.append(VertexBehaviour(cached=True))
    answer = client.models.generate_content(model=VERTEX_GEMINI, contents=QUESTION, config=CONFIG)
    assert answer.text == gemini.REPLY
    forwarded = fake_vertex.requests[-1]
    assert forwarded.path.endswith(f"/publishers/google/models/{VERTEX_GEMINI}:generateContent")
    assert forwarded.body == json.loads(sent.bodies[-1])
    chunks = client.models.generate_content_stream(model=VERTEX_GEMINI, contents=QUESTION)
    assert "".join(chunk.text for chunk in chunks) == gemini.REPLY
    assert fake_vertex.requests[-1].path.endswith(":streamGenerateContent?alt=sse")
    whole, streamed = consume_logs(2)
    assert (whole.quota, streamed.quota) == (GEMINI_CACHED, GEMINI_QUOTA)
    assert used(token) == GEMINI_CACHED + GEMINI_QUOTA


def test_openai_channel_converted(world):
    client, fakes, _, _, token, _ = world
    fake = fakes["openai"]
    fake.script.append(openai_upstream.Behaviour(cached=True))
    answer = client.models.generate_content(model=GPT, contents=QUESTION, config=CONFIG)
    assert answer.text == openai_upstream.REPLY and answer.candidates[0].finish_reason == types.FinishReason.STOP
    usage = answer.usage_metadata
    assert (usage.prompt_token_count, usage.cached_content_token_count, usage.thoughts_token_count) == (
        openai_upstream.PROMPT_TOKENS,
        openai_upstream.CACHED_TOKENS,
        openai_upstream.REASONING_TOKENS,
    )
    sent = fake.requests[-1].body
    assert sent["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": QUESTION},
    ]
    assert (sent["temperature"], sent["max_tokens"], sent["stop"]) == (0.5, 256, ["END"])
    chunks = list(client.models.generate_content_stream(model=GPT, contents=QUESTION, config=CONFIG))
    assert "".join(chunk.text or "" for chunk in chunks) == openai_upstream.REPLY
    assert chunks[-1].usage_metadata.candidates_token_count == len(openai_upstream.REPLY_PIECES)
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}
    whole, streamed = consume_logs(2)
    cached = quota_of(openai_upstream.PROMPT_TOKENS, len(openai_upstream.REPLY_PIECES), openai_upstream.CACHED_TOKENS)
    assert (whole.quota, streamed.quota) == (cached, GPT_QUOTA) and used(token) == cached + GPT_QUOTA
    assert whole.content.startswith("gemini generateContent, converted to chat: ")


def test_anthropic_channel_converted(world):
    client, fakes, _, _, token, _ = world
    answer = client.models.generate_content(model=CLAUDE, contents=QUESTION, config=CONFIG)
    assert answer.text == claude.REPLY
    assert fakes["anthropic"].requests[-1].body["system"] == "Answer briefly."
    chunks = client.models.generate_content_stream(model=CLAUDE, contents=QUESTION, config=CONFIG)
    assert "".join(chunk.text or "" for chunk in chunks) == claude.REPLY
    whole, streamed = consume_logs(2)
    assert whole.quota == quota_of(whole.prompt_tokens, whole.completion_tokens, whole.cache_read_tokens)
    assert answer.usage_metadata.prompt_token_count == whole.prompt_tokens
    assert used(token) == whole.quota + streamed.quota


def test_function_call_round_trip(world):
    client, fakes, _, _, _, _ = world
    fake = fakes["openai"]
    fake.script.append(openai_upstream.Behaviour(tool_call=True))
    asked = client.models.generate_content(model=GPT, contents=QUESTION, config=TOOLS_CONFIG)
    (call,) = asked.function_calls
    assert (call.name, call.args) == (openai_upstream.TOOL_NAME, {"city": "Lisbon"})
    declared = fake.requests[-1].body["tools"][0]["function"]
    city = {"city": {"type": "string"}}
    assert declared["parameters"] == {"type": "object", "properties": city, "required": ["city"]}
    history = [
        types.Content(role="user", parts=[types.Part.from_text(text=QUESTION)]),
        asked.candidates[0].content,
        types.Content(role="user", parts=[types.Part.from_function_response(name=call.name, response={"t": "21C"})]),
    ]
    answer = client.models.generate_content(model=GPT, contents=history, config=TOOLS_CONFIG)
    assert answer.text == openai_upstream.REPLY
    assistant, tool = fake.requests[-1].body["messages"][-2:]
    assert assistant["tool_calls"][0]["function"]["name"] == openai_upstream.TOOL_NAME
    assert tool == {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": '{"t":"21C"}'}
    fake.script.append(openai_upstream.Behaviour(tool_call=True))
    chunks = list(client.models.generate_content_stream(model=GPT, contents=QUESTION, config=TOOLS_CONFIG))
    streamed = [call for chunk in chunks for call in chunk.function_calls or ()]
    assert [(c.name, c.args) for c in streamed] == [(openai_upstream.TOOL_NAME, {"city": "Lisbon"})]


def test_count_tokens_is_free(world):
    client, fakes, _, _, token, _ = world
    counted = client.models.count_tokens(model=GEMINI, contents=QUESTION)
    assert counted.total_tokens == gemini.COUNTED_TOKENS
    assert fakes["gemini"].requests[-1].path == f"/v1beta/models/{GEMINI}:countTokens"
    local = client.models.count_tokens(model=GPT, contents=QUESTION)
    assert 3 < local.total_tokens < 20
    assert not fakes["openai"].requests and used(token) == 0 and not Log.objects.exists()


def test_embed_content_passed_through_and_converted(world):
    client, fakes, _, sent, token, _ = world
    passed = client.models.embed_content(model=GEMINI_EMBEDDING, contents=["Lisbon", "Porto"])
    assert [embedding.values for embedding in passed.embeddings] == [gemini.EMBEDDING] * 2
    forwarded = fakes["gemini"].requests[-1]
    assert forwarded.path.endswith(f"{GEMINI_EMBEDDING}:batchEmbedContents") and forwarded.raw == sent.bodies[-1]
    converted = client.models.embed_content(model=GPT_EMBEDDING, contents="Lisbon")
    assert converted.embeddings[0].values == openai_upstream.EMBEDDING
    assert fakes["openai"].requests[-1].body == {"model": GPT_EMBEDDING, "input": ["Lisbon"]}
    local, upstream = consume_logs(2)
    assert local.content.startswith("gemini batchEmbedContents, passed through: ") and local.prompt_tokens > 0
    assert upstream.content.startswith("gemini batchEmbedContents, converted to embeddings: ")
    assert upstream.quota == quota_of(openai_upstream.PROMPT_TOKENS, 0)
    assert used(token) == local.quota + upstream.quota


def test_models_listed_in_gemini_shape(world):
    client, _, _, _, _, server = world
    listed = {model.name: model for model in client.models.list()}
    assert set(listed) == {f"models/{name}" for name in MODELS}
    assert "generateContent" in listed[f"models/{GEMINI}"].supported_actions
    assert client.models.get(model=GPT).name == f"models/{GPT}"
    key = client._api_client.api_key
    gemini_list = httpx.get(f"{server.url}/v1/models", headers={"x-goog-api-key": key}).json()
    openai_list = httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {key}"}).json()
    assert len(gemini_list["models"]) == len(openai_list["data"]) == len(MODELS)


def test_errors_in_google_shape(world, alice):
    client, fakes, _, _, token, server = world
    wrong = genai.Client(api_key="sk-wrong", http_options=types.HttpOptions(base_url=server.url))
    with pytest.raises(errors.ClientError) as refused:
        wrong.models.generate_content(model=GEMINI, contents=QUESTION)
    assert (refused.value.code, refused.value.status) == (401, "UNAUTHENTICATED")
    with pytest.raises(errors.ClientError) as unknown:
        client.models.generate_content(model="no-such-model", contents=QUESTION)
    assert (unknown.value.code, unknown.value.status) == (404, "NOT_FOUND")
    with pytest.raises(errors.ClientError) as missing:
        client.models.get(model="no-such-model")
    assert missing.value.code == 404
    built_in = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    with pytest.raises(errors.ClientError, match="googleSearch") as refused_tool:
        client.models.generate_content(model=GPT, contents=QUESTION, config=built_in)
    assert refused_tool.value.code == 400 and not fakes["openai"].requests
    fakes["gemini"].script.append(gemini.Behaviour(status=503, body=gemini.UNAVAILABLE))
    with pytest.raises(errors.ServerError) as unavailable:
        client.models.generate_content(model=GEMINI, contents=QUESTION)
    assert (unavailable.value.code, unavailable.value.status) == (503, "UNAVAILABLE")
    bad_path = httpx.post(f"{server.url}/v1beta/tunedModels/x:generateContent", json={})
    assert bad_path.status_code == 404 and bad_path.json()["error"]["status"] == "NOT_FOUND"
    assert used(token) == 0


def test_stream_broken_off_raises_in_the_sdk_and_bills_what_was_delivered(world):
    client, fakes, _, _, token, _ = world
    fakes["gemini"].script.append(gemini.Behaviour(error_after=1))  # Gemini's own error event, relayed as it came
    with pytest.raises(errors.ServerError) as relayed:
        for _ in client.models.generate_content_stream(model=GEMINI, contents=QUESTION):
            pass
    assert (relayed.value.code, relayed.value.status) == (503, "UNAVAILABLE")
    fakes["openai"].script.append(openai_upstream.Behaviour(die_after=2))  # the connection drops mid-stream
    texts = []
    with pytest.raises(errors.ServerError) as written:
        for chunk in client.models.generate_content_stream(model=GPT, contents=QUESTION):
            texts.append(chunk.text)
    assert written.value.code == 502 and texts
    passed, converted = consume_logs(2)
    assert all(log.content.split(": ", 1)[1].startswith("upstream failed mid-stream") for log in (passed, converted))
    assert passed.prompt_tokens == gemini.PROMPT_TOKENS and passed.completion_tokens > 0
    assert used(token) == passed.quota + converted.quota > 0
