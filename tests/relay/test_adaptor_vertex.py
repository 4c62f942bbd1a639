"""Vertex AI channels: the service account's JWT and OAuth token, routing by model family, and the relay,
the management API and the channel test against a fake token endpoint and a fake Vertex."""

import asyncio
import json
import time

import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.test import Client

from billing.models import Log
from channels_app.models import Channel
from channels_app.routing import ChannelInfo, channel_info
from relay import sse
from relay.adaptors import google_auth
from relay.adaptors.base import UpstreamFailed, Usage
from relay.adaptors.vertex import VertexAdaptor, check_channel, claude_id
from tests.support.factories import CHANNEL_FORM, make_channel
from tests.support.fakes import anthropic_upstream, gemini_upstream, openai_upstream
from tests.support.fakes import vertex_upstream as fake
from tests.support.fakes.recording import Behaviour
from tests.support.fakes.vertex_upstream import FakeVertex
from tests.support.relay_client import (
    WEATHER_TOOL,
    assembled_text,
    chat_request,
    chunks_of,
    consume_log,
    finish_reasons,
    post_chat,
    sse_payloads,
)

pytestmark = pytest.mark.django_db(transaction=True)

GEMINI = "gemini-2.0-flash"
CLAUDE = "claude-3-5-sonnet-20241022"
LLAMA = "llama3-405b-instruct-maas"
HI = {"role": "user", "content": "hi"}
ADAPTOR = VertexAdaptor()
UNIT_TOKEN = "ya29.unit-test-token"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="  # 1x1
PERMISSION_DENIED = {
    "error": {
        "code": 403,
        "message": "Permission denied on resource project my-proj (or it may not exist).",
        "status": "PERMISSION_DENIED",
    }
}


def chat(model: str = GEMINI, **fields) -> dict:
    return {"model": model, "messages": [HI], **fields}


@pytest.fixture
def vertex_channel(fake_vertex: FakeVertex, account_json: str, transactional_db) -> Channel:
    return make_channel(fake_vertex.url, models=[GEMINI, CLAUDE, LLAMA], key=account_json, type="vertex")


def secrets_in(content: bytes, account_json: str, fake_vertex: FakeVertex) -> list[str]:
    """The secrets that appear in `content`: the JSON, its private key, an access token."""
    private_key = json.loads(account_json)["private_key"]
    candidates = [account_json, "PRIVATE KEY", private_key.splitlines()[1], "ya29."]
    candidates += [grant.token for grant in fake_vertex.grants]
    text = content.decode("utf-8", "replace")
    return [secret for secret in candidates if secret in text]


# --- the service account and its token ---


def test_it_signs_an_rs256_assertion_with_the_service_account_claims(signing_key):
    account = google_auth.service_account(fake.service_account_json(signing_key, "https://oauth2.example/token"))
    header, claims, signature = google_auth.assertion(account, 1_700_000_000).split(".")
    signing_key.public_key().verify(
        fake.unb64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    assert json.loads(fake.unb64(header)) == {"alg": "RS256", "typ": "JWT", "kid": fake.PRIVATE_KEY_ID}
    assert json.loads(fake.unb64(claims)) == {
        "iss": fake.CLIENT_EMAIL,
        "sub": fake.CLIENT_EMAIL,
        "aud": "https://oauth2.example/token",
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
    }


def malformed_accounts(signing_key: rsa.RSAPrivateKey) -> dict[str, tuple[str, str]]:
    """name -> (key text, what the rejection must mention)."""
    good = json.loads(fake.service_account_json(signing_key, "https://oauth2.googleapis.com/token"))
    without_email = {name: value for name, value in good.items() if name != "client_email"}
    broken_pem = good["private_key"].replace("\n", "\n!", 3)
    return {
        "not json": ("sk-not-a-service-account", "service-account JSON"),
        "a json list": ("[1, 2]", "service-account JSON"),
        "a user credential": (json.dumps({**good, "type": "authorized_user"}), '"service_account"'),
        "no client_email": (json.dumps(without_email), "client_email"),
        "a broken private key": (json.dumps({**good, "private_key": broken_pem}), "private_key"),
        "a token_uri that is no URL": (json.dumps({**good, "token_uri": "oauth2"}), "token_uri"),
    }


def test_it_names_what_is_wrong_with_a_malformed_service_account_without_quoting_it(signing_key):
    for name, (key, mentioned) in malformed_accounts(signing_key).items():
        problems = check_channel(key, {})
        assert mentioned in problems["key"], name
        assert "PRIVATE KEY" not in problems["key"] and key not in problems["key"], name


def test_it_checks_the_region_and_project_config(account_json):
    assert check_channel(account_json, {"region": "us-east5", "project_id": "other"}) == {}
    assert check_channel(account_json, {"region": {"default": "us-central1", CLAUDE: "us-east5"}}) == {}
    assert "region" in check_channel(account_json, {"region": 5})["config"]
    assert "project_id" in check_channel(account_json, {"project_id": ["p"]})["config"]


# --- requests by model family ---


@pytest.fixture
def unit_account(signing_key) -> str:
    """A service-account key whose access token is already cached, for build_request on its own."""
    key = fake.service_account_json(signing_key, "https://oauth2.googleapis.com/token")
    google_auth.Tokens.clear()
    google_auth.Tokens.cached = {google_auth.service_account(key).cache_key: (UNIT_TOKEN, time.time() + 3600)}
    return key


def outgoing(key: str, body: dict, **fields):
    fields.setdefault("base_url", "")
    info = ChannelInfo(id=1, name="vertex", type="vertex", key=key, priority=0, weight=1, **fields)
    return ADAPTOR.build_request(chat_request(body), info)


def test_it_sends_gemini_models_to_generate_content_on_the_regional_host(unit_account):
    system = {"role": "system", "content": "Be brief."}
    sent = outgoing(unit_account, chat(messages=[system, HI]))
    location = "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1"
    assert sent.url == f"{location}/publishers/google/models/{GEMINI}:generateContent"
    assert sent.headers["Authorization"] == f"Bearer {UNIT_TOKEN}"
    body = orjson.loads(sent.content)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    streamed = outgoing(unit_account, chat(stream=True))
    assert streamed.url == f"{location}/publishers/google/models/{GEMINI}:streamGenerateContent?alt=sse"


def test_it_sends_claude_models_to_raw_predict_with_the_vertex_anthropic_version_and_no_model(unit_account):
    sent = outgoing(unit_account, chat(CLAUDE, max_tokens=50), config={"region": "us-east5"})
    location = "https://us-east5-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-east5"
    assert sent.url == f"{location}/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict"
    body = orjson.loads(sent.content)
    assert body == {
        "anthropic_version": "vertex-2023-10-16",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "stream": False,
    }
    streamed = outgoing(unit_account, chat(CLAUDE, stream=True), config={"region": "us-east5"})
    assert streamed.url.endswith("claude-3-5-sonnet-v2@20241022:streamRawPredict")
    assert orjson.loads(streamed.content)["stream"] is True


@pytest.mark.parametrize(
    ("anthropic_id", "vertex_id"),
    [
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-v2@20241022"),
        ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet@20240620"),
        ("claude-3-haiku-20240307", "claude-3-haiku@20240307"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4@20250514"),
        ("claude-3-7-sonnet@20250219", "claude-3-7-sonnet@20250219"),
    ],
)
def test_it_names_claude_models_the_vertex_way(anthropic_id, vertex_id):
    assert claude_id(anthropic_id) == vertex_id


def test_it_sends_llama_models_to_the_openai_compatible_endpoint_as_meta_models(unit_account):
    body = chat(LLAMA, stream=True, stream_options={"include_usage": True}, temperature=0.2)
    sent = outgoing(unit_account, body)
    location = "https://us-central1-aiplatform.googleapis.com/v1beta1/projects/my-proj/locations/us-central1"
    assert sent.url == f"{location}/endpoints/openapi/chat/completions"
    assert orjson.loads(sent.content) == {
        "model": f"meta/{LLAMA}",
        "messages": [HI],
        "stream": True,
        "temperature": 0.2,
    }


def test_it_takes_region_and_project_from_config_and_the_host_from_base_url(unit_account):
    regions = {"region": {"default": "europe-west4", CLAUDE: "us-east5"}, "project_id": "other-proj"}
    assert outgoing(unit_account, chat(), config=regions).url.startswith(
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/other-proj/locations/europe-west4/"
    )
    assert "/locations/us-east5/" in outgoing(unit_account, chat(CLAUDE), config=regions).url
    assert outgoing(unit_account, chat(), config={"region": "global"}).url.startswith(
        "https://aiplatform.googleapis.com/v1/projects/my-proj/locations/global/"
    )
    proxied = outgoing(unit_account, chat(), base_url="https://vertex-proxy.example/")
    assert proxied.url.startswith("https://vertex-proxy.example/v1/projects/my-proj/locations/us-central1/")


def test_it_refuses_a_model_of_no_vertex_family_so_another_channel_can_serve_it(unit_account):
    with pytest.raises(UpstreamFailed) as refused:
        outgoing(unit_account, chat("gpt-4o"))
    assert refused.value.failure.status == 501
    mapped = outgoing(unit_account, chat("gpt-4o"), model_mapping={"gpt-4o": GEMINI})
    assert f"/models/{GEMINI}:" in mapped.url


def test_it_reads_google_and_anthropic_errors_with_the_provider_message():
    google = ADAPTOR.parse_error(403, orjson.dumps(PERMISSION_DENIED))
    assert (google.status, google.message, google.code) == (
        403,
        PERMISSION_DENIED["error"]["message"],
        "PERMISSION_DENIED",
    )
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    claude = ADAPTOR.parse_error(529, orjson.dumps(error))
    assert (claude.status, claude.message, claude.type) == (503, "Overloaded", "overloaded_error")


# --- through the relay, against the fake token endpoint and Vertex ---


async def test_it_relays_a_gemini_answer_with_a_token_bought_with_the_service_account(
    alice_key, vertex_channel, fake_vertex
):
    response = await post_chat(alice_key, chat())
    assert response.status_code == 200, response.content
    body = orjson.loads(response.content)
    assert body["choices"][0]["message"]["content"] == gemini_upstream.REPLY
    assert body["model"] == GEMINI
    [grant] = fake_vertex.grants
    assert grant.header["alg"] == "RS256" and grant.header["kid"] == fake.PRIVATE_KEY_ID
    assert (grant.claims["iss"], grant.claims["aud"]) == (fake.CLIENT_EMAIL, fake_vertex.token_uri)
    assert grant.claims["exp"] - grant.claims["iat"] == 3600
    [sent] = fake_vertex.requests
    assert sent.path == f"/v1/projects/my-proj/locations/us-central1/publishers/google/models/{GEMINI}:generateContent"
    assert sent.headers["Authorization"] == f"Bearer {grant.token}"
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (
        gemini_upstream.PROMPT_TOKENS,
        gemini_upstream.COMPLETION_TOKENS,
    )


async def test_it_streams_a_gemini_answer_with_usage(alice_key, vertex_channel, fake_vertex):
    response = await post_chat(alice_key, chat(stream=True, stream_options={"include_usage": True}))
    assert response.status_code == 200
    payloads = await sse_payloads(response)
    assert payloads[-1] == sse.DONE
    chunks = chunks_of(payloads)
    assert assembled_text(chunks) == gemini_upstream.REPLY
    assert finish_reasons(chunks) == ["stop"]
    [usage_chunk] = [chunk for chunk in chunks if chunk.get("usage")]
    assert usage_chunk["usage"]["prompt_tokens"] == gemini_upstream.PROMPT_TOKENS
    assert fake_vertex.requests[0].path.endswith(f"{GEMINI}:streamGenerateContent?alt=sse")


async def test_it_relays_a_claude_answer_with_usage_through_raw_predict(alice_key, vertex_channel, fake_vertex):
    response = await post_chat(alice_key, chat(CLAUDE, messages=[{"role": "system", "content": "Be brief."}, HI]))
    assert response.status_code == 200, response.content
    body = orjson.loads(response.content)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": anthropic_upstream.REPLY}
    assert body["usage"]["prompt_tokens"] == anthropic_upstream.PROMPT_TOKENS
    [sent] = fake_vertex.requests
    assert sent.path.endswith("/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict")
    assert sent.body["system"] == "Be brief." and "model" not in sent.body
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (
        anthropic_upstream.PROMPT_TOKENS,
        anthropic_upstream.OUTPUT_TOKENS,
    )


async def test_it_streams_a_claude_answer_with_usage_through_stream_raw_predict(alice_key, vertex_channel, fake_vertex):
    response = await post_chat(alice_key, chat(CLAUDE, stream=True, stream_options={"include_usage": True}))
    chunks = chunks_of(await sse_payloads(response))
    assert assembled_text(chunks) == anthropic_upstream.REPLY
    assert finish_reasons(chunks) == ["stop"]
    [usage_chunk] = [chunk for chunk in chunks if chunk.get("usage")]
    assert usage_chunk["usage"] == {
        "prompt_tokens": anthropic_upstream.PROMPT_TOKENS,
        "completion_tokens": anthropic_upstream.OUTPUT_TOKENS,
        "total_tokens": anthropic_upstream.PROMPT_TOKENS + anthropic_upstream.OUTPUT_TOKENS,
        "prompt_tokens_details": {"cached_tokens": anthropic_upstream.CACHE_READ_TOKENS},
    }
    assert fake_vertex.requests[0].path.endswith("claude-3-5-sonnet-v2@20241022:streamRawPredict")
    log = await consume_log(response["X-Request-Id"])
    assert log.completion_tokens == anthropic_upstream.OUTPUT_TOKENS and log.content.startswith("stream ended normally")


@pytest.fixture
def alias_channel(fake_vertex: FakeVertex, account_json: str, transactional_db) -> Channel:
    mapping = {"house-model": CLAUDE}
    return make_channel(fake_vertex.url, models=["house-model"], key=account_json, type="vertex", model_mapping=mapping)


async def test_it_converts_by_the_answer_format_when_the_requested_name_is_an_alias(
    alice_key, alias_channel, fake_vertex
):
    response = await post_chat(alice_key, chat("house-model", stream=True, stream_options={"include_usage": True}))
    chunks = chunks_of(await sse_payloads(response))
    assert assembled_text(chunks) == anthropic_upstream.REPLY
    assert all(chunk["model"] == "house-model" for chunk in chunks)
    assert chunks[-1]["usage"]["completion_tokens"] == anthropic_upstream.OUTPUT_TOKENS
    assert fake_vertex.requests[0].path.endswith("claude-3-5-sonnet-v2@20241022:streamRawPredict")


async def test_it_round_trips_a_claude_tool_call(alice_key, vertex_channel, fake_vertex):
    fake_vertex.script.append(Behaviour(tool_call=True))
    question = {"role": "user", "content": "Weather in Lisbon?"}
    first = await post_chat(alice_key, chat(CLAUDE, messages=[question], tools=[WEATHER_TOOL]))
    message = orjson.loads(first.content)["choices"][0]["message"]
    assert message["tool_calls"][0]["function"] == {"name": "lookup_weather", "arguments": '{"city":"Lisbon"}'}
    result = {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "21C"}
    second = await post_chat(alice_key, chat(CLAUDE, messages=[question, message, result], tools=[WEATHER_TOOL]))
    assert orjson.loads(second.content)["choices"][0]["message"]["content"] == anthropic_upstream.REPLY
    sent = fake_vertex.requests[1].body
    assert sent["tools"][0]["name"] == "lookup_weather"
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": anthropic_upstream.TOOL_ID, "content": "21C"}
    ]


async def test_it_sends_a_multi_turn_gemini_conversation_with_an_image(alice_key, vertex_channel, fake_vertex):
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    messages = [
        {"role": "system", "content": "Describe briefly."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi! Send a picture."},
        {"role": "user", "content": [{"type": "text", "text": "This one"}, image]},
    ]
    response = await post_chat(alice_key, chat(messages=messages))
    assert response.status_code == 200, response.content
    sent = fake_vertex.requests[0].body
    assert sent["systemInstruction"] == {"parts": [{"text": "Describe briefly."}]}
    assert [turn["role"] for turn in sent["contents"]] == ["user", "model", "user"]
    assert sent["contents"][2]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}


async def test_it_relays_llama_through_the_openai_compatible_endpoint(alice_key, vertex_channel, fake_vertex):
    response = await post_chat(alice_key, chat(LLAMA))
    assert response.status_code == 200, response.content
    body = orjson.loads(response.content)
    assert body["choices"][0]["message"]["content"] == openai_upstream.REPLY
    assert body["model"] == LLAMA  # not the meta/ name Vertex was asked for
    [sent] = fake_vertex.requests
    assert sent.path == "/v1beta1/projects/my-proj/locations/us-central1/endpoints/openapi/chat/completions"
    assert sent.body["model"] == f"meta/{LLAMA}"
    log = await consume_log(response["X-Request-Id"])
    assert log.prompt_tokens == openai_upstream.PROMPT_TOKENS


async def test_it_streams_llama_and_adds_the_usage_chunk_itself(alice_key, vertex_channel, fake_vertex):
    response = await post_chat(alice_key, chat(LLAMA, stream=True, stream_options={"include_usage": True}))
    chunks = chunks_of(await sse_payloads(response))
    assert assembled_text(chunks) == openai_upstream.REPLY
    assert "stream_options" not in fake_vertex.requests[0].body
    assert len([chunk for chunk in chunks if chunk.get("usage")]) == 1


async def test_it_buys_one_token_for_many_requests(alice_key, vertex_channel, fake_vertex):
    for model in (GEMINI, CLAUDE, LLAMA, GEMINI):
        assert (await post_chat(alice_key, chat(model))).status_code == 200
    [grant] = fake_vertex.grants
    assert {sent.headers["Authorization"] for sent in fake_vertex.requests} == {f"Bearer {grant.token}"}


async def test_requests_arriving_together_on_a_cold_cache_make_one_token_request(vertex_channel, fake_vertex):
    info = channel_info(vertex_channel)
    await asyncio.gather(*(ADAPTOR.prepare(info) for _ in range(5)))
    assert len(fake_vertex.grants) == 1


async def test_it_buys_a_new_token_once_the_cached_one_is_about_to_expire(alice_key, vertex_channel, fake_vertex):
    fake_vertex.expires_in = google_auth.REFRESH_MARGIN_SECONDS  # expires within the margin: stale at once
    assert (await post_chat(alice_key, chat())).status_code == 200
    fake_vertex.expires_in = 3599
    assert (await post_chat(alice_key, chat())).status_code == 200
    assert (await post_chat(alice_key, chat())).status_code == 200
    first, second = fake_vertex.grants
    assert [sent.headers["Authorization"] for sent in fake_vertex.requests] == [
        f"Bearer {first.token}",
        f"Bearer {second.token}",
        f"Bearer {second.token}",
    ]


async def test_it_returns_a_vertex_error_in_openai_shape_without_leaking_secrets(
    alice_key, vertex_channel, fake_vertex, account_json
):
    fake_vertex.script.append(Behaviour(status=403, body=PERMISSION_DENIED))
    response = await post_chat(alice_key, chat())
    assert response.status_code == 403
    error = orjson.loads(response.content)["error"]
    assert error["message"] == PERMISSION_DENIED["error"]["message"]
    assert error["code"] == "PERMISSION_DENIED"
    assert secrets_in(response.content, account_json, fake_vertex) == []
    failure = await Log.objects.aget(request_id=response["X-Request-Id"], type=Log.Type.ERROR)
    assert secrets_in(failure.content.encode(), account_json, fake_vertex) == []


async def test_a_refused_service_account_disables_the_channel_without_leaking_secrets(
    alice_key, vertex_channel, fake_vertex, account_json
):
    fake_vertex.token_error = {"error": "invalid_grant", "error_description": "Invalid grant: account not found"}
    response = await post_chat(alice_key, chat())
    assert response.status_code == 401
    error = orjson.loads(response.content)["error"]
    assert "invalid_grant" in error["message"] and "account not found" in error["message"]
    assert error["type"] == "authentication_error"
    assert fake_vertex.requests == []  # no token, no call
    assert secrets_in(response.content, account_json, fake_vertex) == []
    channel = await Channel.objects.aget(pk=vertex_channel.pk)
    assert channel.status == Channel.Status.AUTO_DISABLED and "invalid_grant" in channel.status_reason


def test_a_stream_cut_before_any_event_is_an_upstream_failure():
    converter = ADAPTOR.stream_converter(chat_request(chat(stream=True)))
    with pytest.raises(UpstreamFailed):
        converter.finish()


def test_the_stream_converter_reports_the_usage_of_the_format_it_found():
    body = chat(CLAUDE, stream=True)
    converter = ADAPTOR.stream_converter(chat_request(body))
    for _, event in anthropic_upstream.stream_events({**body, "model": CLAUDE}, anthropic_upstream.Behaviour()):
        converter.feed(orjson.dumps(event))
    converter.finish()
    assert converter.state.usage == Usage(
        anthropic_upstream.PROMPT_TOKENS,
        anthropic_upstream.OUTPUT_TOKENS,
        cache_read_tokens=anthropic_upstream.CACHE_READ_TOKENS,
    )
    assert converter.state.text == anthropic_upstream.REPLY


# --- saving and testing channels ---


def api(method: str, path: str, token: str, body: dict | None = None):
    data = json.dumps(body) if body is not None else None
    headers = {"Authorization": f"Bearer {token}"}
    return getattr(Client(), method)(path, data=data, content_type="application/json", headers=headers)


def test_the_management_api_rejects_a_malformed_service_account_with_422(access_token, signing_key):
    for name, (key, mentioned) in malformed_accounts(signing_key).items():
        payload = {"name": "vertex", "type": "vertex", "key": key, "models": [GEMINI]}
        response = api("post", "/api/channels", access_token, payload)
        assert response.status_code == 422, name
        detail = response.json()["detail"]
        assert detail.startswith("key:") and mentioned in detail, name
        assert "PRIVATE KEY" not in detail, name
    assert not Channel.objects.exists()


def test_the_management_api_saves_a_valid_service_account_and_rejects_breaking_it(access_token, account_json):
    payload = {"type": "vertex", "key": account_json, "models": [GEMINI], "config": {"region": "us-east5"}}
    created = api("post", "/api/channels", access_token, payload)
    assert created.status_code == 201, created.content
    assert "PRIVATE KEY" not in created.content.decode()
    broken = api("patch", f"/api/channels/{created.json()['id']}", access_token, {"key": "{}"})
    assert broken.status_code == 422 and broken.json()["detail"].startswith("key:")


def test_the_channel_test_passes_against_the_fakes(access_token, vertex_channel, fake_vertex):
    for model in (GEMINI, CLAUDE, LLAMA):
        Channel.objects.filter(pk=vertex_channel.pk).update(test_model=model)
        result = api("post", f"/api/channels/{vertex_channel.pk}/test", access_token).json()
        assert result["success"] is True, (model, result)
    assert len(fake_vertex.grants) == 1
    assert [sent.body.get("max_tokens") for sent in fake_vertex.requests] == [None, 1, 1]
    assert fake_vertex.requests[0].body["generationConfig"] == {"maxOutputTokens": 1}


def test_the_channel_test_reports_a_refused_service_account(access_token, vertex_channel, fake_vertex):
    fake_vertex.token_error = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    result = api("post", f"/api/channels/{vertex_channel.pk}/test", access_token).json()
    assert result["success"] is False and "Invalid JWT Signature." in result["message"]
    vertex_channel.refresh_from_db()
    assert vertex_channel.status == Channel.Status.AUTO_DISABLED


def test_the_admin_form_rejects_a_malformed_service_account(root):
    client = Client()
    client.force_login(root)
    form = {**CHANNEL_FORM, "name": "vertex-admin", "type": "vertex", "new_key": '{"type": "service_account"}'}
    response = client.post("/admin/channels_app/channel/add/", form)
    assert response.status_code == 200  # the form again, with the error
    assert "the service-account JSON lacks" in response.content.decode()
    assert not Channel.objects.exists()
