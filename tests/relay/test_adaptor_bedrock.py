"""AWS Bedrock channels: the key forms and their check, SigV4 as AWS verifies it, Claude through InvokeModel and
other models through Converse (whole and as AWS's binary event stream), AWS's errors, and the relay's billing,
in process against the fake Bedrock (tests/support/fakes/bedrock_upstream.py)."""

import time

import httpx
import orjson
import pytest
from botocore.eventstream import EventStreamBuffer

from billing.models import Log
from channels_app.channels import type_problems
from channels_app.models import Channel
from channels_app.routing import ChannelInfo, channel_info
from relay.adaptors.base import RelayRequest, UpstreamFailed, UpstreamRequest
from relay.adaptors.bedrock import BedrockAdaptor, InvalidKey, check_channel, credentials_of, event_bytes, is_claude
from relay.adaptors.bedrock_converse import converse_body, usage_of
from relay.channel_models import fetch_models
from relay.channel_test import probe_channel
from relay.formats.anthropic_messages import MESSAGES
from tests.support.factories import make_channel, wait_for
from tests.support.fakes import anthropic_upstream as claude
from tests.support.fakes import bedrock_upstream as fake
from tests.support.fakes.bedrock_upstream import Behaviour, FakeBedrock
from tests.support.fakes.recording import served
from tests.support.relay_client import (
    WEATHER_TOOL,
    assembled_text,
    assembled_tool_calls,
    chat_request,
    chunks_of,
    consume_log,
    finish_reasons,
    post_chat,
    sse_payloads,
)

fake_bedrock_server, fake_bedrock = served(FakeBedrock, "fake_bedrock")

CLAUDE = "claude-sonnet-4-5"
CLAUDE_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
LLAMA = "us.meta.llama3-3-70b-instruct-v1:0"
KEY = f"{fake.ACCESS_KEY}|{fake.SECRET_KEY}|{fake.REGION}"
ADAPTOR = BedrockAdaptor()
HI = {"role": "user", "content": "hi"}


def chat(model: str = LLAMA, **fields) -> dict:
    return {"model": model, "messages": [HI], **fields}


def info(key: str = KEY, base_url: str = "", **config) -> ChannelInfo:
    return ChannelInfo(1, "bedrock", "bedrock", key, base_url, 0, 1, config=config)


def bedrock_channel(fake_bedrock: FakeBedrock, key: str = KEY, **fields) -> Channel:
    mapping = {CLAUDE: CLAUDE_ID}
    return make_channel(fake_bedrock.url, [CLAUDE, LLAMA], key=key, type="bedrock", model_mapping=mapping, **fields)


@pytest.fixture
def channel(fake_bedrock: FakeBedrock, transactional_db) -> Channel:
    return bedrock_channel(fake_bedrock)


# --- the key and its check ---


@pytest.mark.parametrize(
    ("key", "config", "expected"),
    [
        ("AKIAEXAMPLE123456789|secret/key|us-east-1", {}, ("us-east-1", "", "AKIAEXAMPLE123456789", "")),
        ("ASIAEXAMPLE123456789|secret|eu-west-3|token==", {}, ("eu-west-3", "", "ASIAEXAMPLE123456789", "token==")),
        (
            "AKIAEXAMPLE123456789|secret",
            {"region": "ap-southeast-2"},
            ("ap-southeast-2", "", "AKIAEXAMPLE123456789", ""),
        ),
        ("ABSKbedrockapikey|us-west-2", {}, ("us-west-2", "ABSKbedrockapikey", "", "")),
        ("ABSKbedrockapikey", {"region": "us-gov-west-1"}, ("us-gov-west-1", "ABSKbedrockapikey", "", "")),
    ],
)
def test_it_reads_every_key_form(key, config, expected):
    found = credentials_of(key, config)
    assert (found.region, found.api_key, found.access_key, found.session_token) == expected


@pytest.mark.parametrize(
    ("key", "config", "problem"),
    [
        ("AKIAEXAMPLE123456789|secret", {}, "no region"),
        ("ABSKbedrockapikey", {}, "no region"),
        ("AKIAEXAMPLE123456789|secret|mars-1", {}, "not an AWS region"),
        ("lowercase-id|secret|us-east-1", {}, "access key id"),
        ("AKIAEXAMPLE123456789||us-east-1", {}, "empty where its secret"),
        ("a|b|c|d|e", {}, "a bedrock key is"),
    ],
)
def test_it_refuses_keys_it_cannot_use(key, config, problem):
    with pytest.raises(InvalidKey, match=problem):
        credentials_of(key, config)
    assert problem in check_channel(key, config)["key"]


def test_the_check_names_a_bad_configured_region_and_passes_good_channels():
    assert check_channel(KEY, {"region": "Virginia"}) == {"config": "region must be an AWS region such as us-east-1"}
    assert check_channel(KEY, {}) == check_channel(f"{fake.API_KEY}|us-east-1", {}) == {}


@pytest.mark.django_db
def test_a_channel_with_a_key_without_region_is_refused_on_save():
    assert "no region" in type_problems("bedrock", "AKIAEXAMPLE123456789|secret", {})["key"]


def test_claude_models_go_to_invoke_model_and_the_messages_format_agrees():
    for model in (
        "anthropic.claude-3-haiku-20240307-v1:0",
        CLAUDE_ID,
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2",
    ):
        assert is_claude(model) and MESSAGES.native_for("bedrock", model)
    for model in (LLAMA, "amazon.nova-pro-v1:0", "arn:aws:bedrock:us-east-1:123:application-inference-profile/x1"):
        assert not is_claude(model) and not MESSAGES.native_for("bedrock", model)


# --- SigV4 ---


def test_a_signed_request_passes_botocores_check_and_signing_takes_microseconds():
    request = chat_request(chat(messages=[{"role": "user", "content": "x" * 20_000}]))
    outgoing = ADAPTOR.build_request(request, info(base_url="http://127.0.0.1:9"))
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        signed = ADAPTOR.sign(outgoing, info(base_url="http://127.0.0.1:9"))
    per_request_us = (time.perf_counter() - started) / rounds * 1e6
    print(f"SigV4 signing of a {len(outgoing.content)}-byte body: {per_request_us:.0f} us")
    assert per_request_us < 2000
    assert signed.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={fake.ACCESS_KEY}/")
    assert "SignedHeaders=accept;content-type;host;x-amz-date," in signed.headers["Authorization"]
    assert signed.content == outgoing.content and signed.url.endswith(f"/model/{LLAMA}/converse")


def test_a_session_token_is_sent_and_signed(fake_bedrock):
    key = f"{fake.TEMPORARY_ACCESS_KEY}|{fake.TEMPORARY_SECRET_KEY}|{fake.REGION}|{fake.SESSION_TOKEN}"
    outgoing = ADAPTOR.sign(ADAPTOR.build_request(chat_request(chat()), info(key)), info(key))
    assert outgoing.headers["X-Amz-Security-Token"] == fake.SESSION_TOKEN
    assert "x-amz-security-token" in outgoing.headers["Authorization"]


def test_an_api_key_goes_as_bearer_without_a_signature():
    key = f"{fake.API_KEY}|us-east-1"
    outgoing = ADAPTOR.sign(ADAPTOR.build_request(chat_request(chat()), info(key)), info(key))
    assert outgoing.headers["Authorization"] == f"Bearer {fake.API_KEY}" and "X-Amz-Date" not in outgoing.headers
    assert outgoing.url == f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{LLAMA}/converse"


# --- requests ---


def test_claude_gets_anthropics_body_for_bedrock():
    body = chat(CLAUDE_ID, messages=[{"role": "system", "content": "Be brief."}, HI], max_tokens=50, stream=True)
    outgoing = ADAPTOR.build_request(chat_request(body), info())
    sent = orjson.loads(outgoing.content)
    assert sent["anthropic_version"] == "bedrock-2023-05-31" and "model" not in sent and "stream" not in sent
    assert (sent["system"], sent["max_tokens"]) == ("Be brief.", 50)
    assert outgoing.url.endswith("/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke-with-response-stream")
    assert outgoing.headers["Accept"] == "application/vnd.amazon.eventstream"


def test_a_messages_request_is_passed_with_its_betas_in_the_body():
    body = {"model": CLAUDE_ID, "max_tokens": 10, "stream": True, "messages": [HI], "metadata": {"user_id": "u1"}}
    headers = {"anthropic-beta": "context-1m-2025-08-07, interleaved-thinking-2025-05-14", "anthropic-version": "x"}
    request = RelayRequest("messages", CLAUDE_ID, body, orjson.dumps(body), True, False, headers=headers)
    outgoing = ADAPTOR.build_request(request, info())
    assert orjson.loads(outgoing.content) == {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "messages": [HI],
        "metadata": {"user_id": "u1"},
        "anthropic_beta": ["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"],
    }
    assert "anthropic-beta" not in outgoing.headers and "anthropic-version" not in outgoing.headers


def test_chat_becomes_a_converse_request():
    image = "data:image/png;base64,iVBORw0KGgo="
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": image}}],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "lookup_weather", "arguments": '{"city": "Lisbon"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "21C"},
    ]
    body = chat(
        messages=messages,
        max_tokens=64,
        temperature=0.2,
        top_p=0.9,
        stop="END",
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    assert converse_body(chat_request(body)) == {
        "system": [{"text": "Be brief."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "What is this?"},
                    {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                ],
            },
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "lookup_weather", "input": {"city": "Lisbon"}}}],
            },
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "21C"}]}}]},
        ],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "lookup_weather",
                        "description": "Current weather for a city",
                        "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
                    }
                }
            ],
            "toolChoice": {"any": {}},
        },
    }


def test_converse_usage_splits_cache_writes_by_lifetime():
    usage = usage_of(fake.converse_usage(Behaviour(cached=True)))
    assert (usage.prompt_tokens, usage.completion_tokens) == (fake.INPUT_TOKENS + 400, fake.OUTPUT_TOKENS)
    assert (usage.cache_read_tokens, usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (300, 70, 30)
    assert usage.uncached_prompt_tokens == fake.INPUT_TOKENS


# --- the event stream and errors ---


def decoded(messages: list[bytes]) -> list[bytes]:
    buffer = EventStreamBuffer()
    buffer.add_data(b"".join(messages))
    return [event_bytes(message) for message in buffer]


def test_event_stream_messages_become_server_sent_events():
    events = decoded([fake.chunk({"type": "ping"}), fake.event("messageStart", {"role": "assistant"})])
    assert events == [b'event: ping\ndata: {"type": "ping"}\n\n', b'data: {"messageStart":{"role": "assistant"}}\n\n']


def test_an_exception_event_is_the_failure_it_names():
    with pytest.raises(UpstreamFailed) as failed:
        decoded([fake.exception("throttlingException", "Too many requests")])
    failure = failed.value.failure
    assert (failure.status, failure.message, failure.code, failure.permanent) == (
        429,
        "Too many requests",
        "ThrottlingException",
        False,
    )


@pytest.mark.parametrize(
    ("kind", "aws_status", "status", "dead"),
    [
        ("ThrottlingException", 429, 429, False),
        ("AccessDeniedException", 403, 403, True),
        ("UnrecognizedClientException", 403, 403, True),
        ("InvalidSignatureException", 403, 403, True),
        ("ValidationException", 400, 400, False),
        ("ModelNotReadyException", 429, 503, False),
        ("ServiceUnavailableException", 503, 503, False),
        ("SomethingNewException", 418, 418, False),
    ],
)
def test_aws_errors_map_to_the_relays_failures(kind, aws_status, status, dead):
    headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    failure = ADAPTOR.error_answer(aws_status, headers, b'{"message": "nope"}')
    assert (failure.status, failure.message, failure.code, failure.permanent) == (status, "nope", kind, dead)


def test_fetch_models_lists_the_default_bedrock_models(channel):
    assert "us.meta.llama3-3-70b-instruct-v1:0" in fetch_models(channel)


# --- through the relay ---


async def test_it_relays_a_converse_answer_and_bills_its_cache_lanes(alice_key, channel, fake_bedrock):
    fake_bedrock.script.append(Behaviour(cached=True))
    response = await post_chat(alice_key, chat(max_tokens=20))
    assert response.status_code == 200, response.content
    body = orjson.loads(response.content)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": fake.CONVERSE_REPLY}
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": fake.CACHE_READ_TOKENS}
    [sent] = fake_bedrock.requests
    assert sent.path == "/model/us.meta.llama3-3-70b-instruct-v1:0/converse"
    assert sent.body["inferenceConfig"] == {"maxTokens": 20}
    log = await consume_log(response["X-Request-Id"])
    assert (log.prompt_tokens, log.completion_tokens) == (fake.INPUT_TOKENS + 400, fake.OUTPUT_TOKENS)
    assert (log.cache_read_tokens, log.cache_write_5m_tokens, log.cache_write_1h_tokens) == (300, 70, 30)


async def test_it_streams_a_converse_answer_with_a_tool_call(alice_key, channel, fake_bedrock):
    fake_bedrock.script.append(Behaviour(tool_call=True))
    body = chat(stream=True, stream_options={"include_usage": True}, tools=[WEATHER_TOOL])
    response = await post_chat(alice_key, body)
    chunks = chunks_of(await sse_payloads(response))
    assert assembled_text(chunks) == fake.CONVERSE_REPLY
    assert assembled_tool_calls(chunks) == {
        0: {"id": fake.TOOL_ID, "name": fake.TOOL_NAME, "arguments": '{"city": "Lisbon"}'}
    }
    assert finish_reasons(chunks) == ["tool_calls"]
    assert chunks[-1]["usage"]["completion_tokens"] == fake.OUTPUT_TOKENS
    assert fake_bedrock.requests[0].path.endswith("/converse-stream")
    log = await consume_log(response["X-Request-Id"])
    assert log.content.startswith("stream ended normally") and log.completion_tokens == fake.OUTPUT_TOKENS


async def test_it_relays_claude_through_invoke_model(alice_key, channel, fake_bedrock):
    fake_bedrock.script.append(Behaviour(cached=True))
    response = await post_chat(alice_key, chat(CLAUDE))
    assert response.status_code == 200, response.content
    assert orjson.loads(response.content)["choices"][0]["message"]["content"] == claude.REPLY
    assert fake_bedrock.requests[0].path == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke"
    log = await consume_log(response["X-Request-Id"])
    assert (log.cache_read_tokens, log.cache_write_5m_tokens, log.cache_write_1h_tokens) == (
        claude.CACHE_READ_TOKENS,
        claude.CACHE_WRITE_5M_TOKENS,
        claude.CACHE_WRITE_1H_TOKENS,
    )


async def test_it_streams_claude_from_the_event_stream(alice_key, channel, fake_bedrock):
    response = await post_chat(alice_key, chat(CLAUDE, stream=True, stream_options={"include_usage": True}))
    chunks = chunks_of(await sse_payloads(response))
    assert assembled_text(chunks) == claude.REPLY and finish_reasons(chunks) == ["stop"]
    assert chunks[-1]["usage"]["prompt_tokens"] == claude.PROMPT_TOKENS
    log = await consume_log(response["X-Request-Id"])
    assert log.completion_tokens == claude.OUTPUT_TOKENS and log.content.startswith("stream ended normally")


async def test_a_throttling_exception_before_the_first_token_is_a_429(alice_key, channel, fake_bedrock):
    fake_bedrock.script += [Behaviour(exception_first=True)] * 3
    response = await post_chat(alice_key, chat(CLAUDE, stream=True))
    assert response.status_code == 429, response.content
    assert orjson.loads(response.content)["error"]["code"] == "ThrottlingException"


async def test_an_exception_mid_stream_ends_it_and_bills_what_was_delivered(alice_key, channel, fake_bedrock):
    fake_bedrock.script.append(Behaviour(exception_after=2))
    response = await post_chat(alice_key, chat(stream=True))
    payloads = await sse_payloads(response)
    assert assembled_text(chunks_of(payloads)) == "".join(fake.CONVERSE_REPLY_PIECES[:2])
    assert b"Too many requests" in payloads[-2]
    # Counting the delivered text locally may first build the tokenizer's table, slow on a busy machine.
    await wait_for(lambda: Log.objects.filter(request_id=response["X-Request-Id"]).exists(), timeout=60)
    log = await consume_log(response["X-Request-Id"])
    assert log.content.startswith("upstream failed mid-stream") and log.completion_tokens > 0


PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"


@pytest.fixture
def profile_channel(fake_bedrock: FakeBedrock, transactional_db) -> Channel:
    mapping = {"house-model": PROFILE_ARN}
    return make_channel(fake_bedrock.url, ["house-model"], key=KEY, type="bedrock", model_mapping=mapping)


async def test_an_inference_profile_arn_is_signed_as_the_path_it_travels_in(alice_key, profile_channel, fake_bedrock):
    response = await post_chat(alice_key, chat("house-model"))
    assert response.status_code == 200, response.content
    sent = fake_bedrock.requests[0]
    assert sent.path == "/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile%2Fa1b2c3/converse"


@pytest.fixture
def wrong_secret_channel(fake_bedrock: FakeBedrock, transactional_db) -> Channel:
    return bedrock_channel(fake_bedrock, key=f"{fake.ACCESS_KEY}|not-the-secret|{fake.REGION}")


@pytest.fixture
def api_key_channel(fake_bedrock: FakeBedrock, transactional_db) -> Channel:
    return bedrock_channel(fake_bedrock, key=f"{fake.API_KEY}|{fake.REGION}")


async def test_a_wrong_secret_fails_the_signature_check_and_disables_the_channel(
    alice_key, wrong_secret_channel, fake_bedrock
):
    wrong = wrong_secret_channel
    response = await post_chat(alice_key, chat())
    assert response.status_code == 403
    error = orjson.loads(response.content)["error"]
    assert error["code"] == "InvalidSignatureException" and "not-the-secret" not in response.content.decode()
    await wrong.arefresh_from_db()
    assert wrong.status == Channel.Status.AUTO_DISABLED
    assert "signature we calculated does not match" in wrong.status_reason


async def test_the_api_key_form_works_through_the_relay(alice_key, api_key_channel, fake_bedrock):
    response = await post_chat(alice_key, chat())
    assert response.status_code == 200, response.content
    assert fake_bedrock.requests[0].headers["Authorization"] == f"Bearer {fake.API_KEY}"


def test_the_channel_test_passes_with_good_credentials(channel, fake_bedrock):
    result = probe_channel(channel)
    assert result.success, result.message
    assert channel_info(channel).key == KEY


def test_the_signature_covers_the_exact_bytes_sent(fake_bedrock):
    outgoing = ADAPTOR.sign(ADAPTOR.build_request(chat_request(chat()), info(base_url=fake_bedrock.url)), info())
    tampered = UpstreamRequest(outgoing.url, outgoing.headers, outgoing.content.replace(b"hi", b"ho"))
    assert httpx.post(outgoing.url, headers=outgoing.headers, content=outgoing.content).status_code == 200
    answer = httpx.post(tampered.url, headers=tampered.headers, content=tampered.content)
    assert answer.status_code == 403 and answer.headers["x-amzn-ErrorType"].startswith("InvalidSignatureException")
