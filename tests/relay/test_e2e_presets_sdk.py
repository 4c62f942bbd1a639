"""Provider presets end to end: the real server, the official SDK, and a fake of each provider in its own
dialect (tests/support/fakes/preset_upstream.py). A preset channel needs a type and a key: it calls the
provider's API root with its auth header, relays the reasoning text as `reasoning_content`, tells the client
OpenAI's usage and bills the reasoning as output and the cache hits in the cache lane, whole and streamed."""

import math
from urllib.parse import urlsplit

import anthropic
import openai
import orjson
import pytest

from channels_app.routing import ChannelInfo
from relay.adaptors.base import RelayRequest
from relay.adaptors.presets import PRESET_ADAPTORS, PRESETS
from tests.support.factories import make_channel, make_key
from tests.support.fakes import preset_upstream
from tests.support.fakes.openai_upstream import start
from tests.support.fakes.preset_upstream import DIALECTS, FakePreset
from tests.support.live_server import LiveGateway, consume_logs, set_prices

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "user", "content": "Hello!"}]
MODEL_RATIO, COMPLETION_RATIO, CACHE_RATIO = 2.0, 3.0, 0.1
MODELS = {preset.slug: preset.models[0] for preset in PRESETS}
UNCACHED = preset_upstream.PROMPT_TOKENS - preset_upstream.CACHED_TOKENS
QUOTA = math.ceil(
    round(
        (UNCACHED + preset_upstream.CACHED_TOKENS * CACHE_RATIO + preset_upstream.COMPLETION_TOKENS * COMPLETION_RATIO)
        * MODEL_RATIO,
        6,
    )
)


@pytest.fixture(scope="module")
def fakes() -> dict[str, FakePreset]:
    started = {slug: FakePreset(dialect) for slug, dialect in DIALECTS.items()}
    for fake in started.values():
        start(fake)
    return started


@pytest.fixture
def gateway(alice, access_token, fakes):
    for preset in PRESETS:
        fakes[preset.slug].reset()
        root = urlsplit(preset.base_url).path  # the channel's host is the fake's, its API root the provider's
        make_channel(fakes[preset.slug].url + root, [MODELS[preset.slug]], preset_upstream.API_KEY, type=preset.slug)
    _, key = make_key(alice)
    server = LiveGateway()
    set_prices(
        server.url,
        access_token,
        list(MODELS.values()),
        model_ratio=MODEL_RATIO,
        completion_ratio=COMPLETION_RATIO,
        cache_ratio=CACHE_RATIO,
    )
    yield server, key
    server.stop()


@pytest.fixture
def client(gateway) -> openai.OpenAI:
    server, key = gateway
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def assert_usage(usage) -> None:
    """OpenAI's usage whatever the provider's dialect: completion tokens include the reasoning."""
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        preset_upstream.PROMPT_TOKENS,
        preset_upstream.COMPLETION_TOKENS,
    )
    assert usage.prompt_tokens_details.cached_tokens == preset_upstream.CACHED_TOKENS


@pytest.mark.parametrize("slug", list(MODELS))
def test_a_preset_channel_relays_reasoning_and_bills_it_as_output_and_cache_hits_in_the_cache_lane(client, fakes, slug):
    model = MODELS[slug]
    answer = client.chat.completions.create(model=model, messages=MESSAGES)
    assert answer.choices[0].message.content == preset_upstream.REPLY
    assert answer.choices[0].message.model_extra["reasoning_content"] == preset_upstream.REASONING
    assert_usage(answer.usage)

    stream = list(
        client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    deltas = [chunk.choices[0].delta for chunk in stream if chunk.choices]
    assert "".join(delta.content or "" for delta in deltas) == preset_upstream.REPLY
    reasoning = "".join((delta.model_extra or {}).get("reasoning_content") or "" for delta in deltas)
    assert reasoning == preset_upstream.REASONING
    assert_usage(stream[-1].usage)

    sent = fakes[slug].requests
    assert [request.headers["Authorization"] for request in sent] == [f"Bearer {preset_upstream.API_KEY}"] * 2
    logs = consume_logs(2, model=model)
    assert [log.is_stream for log in logs] == [False, True]
    for log in logs:
        assert log.quota == QUOTA, log.content
        assert (log.completion_tokens, log.reasoning_tokens, log.cache_read_tokens) == (
            preset_upstream.COMPLETION_TOKENS,
            preset_upstream.REASONING_TOKENS,
            preset_upstream.CACHED_TOKENS,
        )


def test_mistral_gets_no_stream_options_and_its_own_name_for_the_token_limit(client, fakes):
    stream = client.chat.completions.create(
        model=MODELS["mistral"], messages=MESSAGES, stream=True, max_completion_tokens=50
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == preset_upstream.REPLY
    sent = fakes["mistral"].requests[0].body
    assert "stream_options" not in sent and "max_completion_tokens" not in sent and sent["max_tokens"] == 50
    assert consume_logs(1, model=MODELS["mistral"])[0].quota == QUOTA  # the usage Mistral always sends


def test_qwen_whole_answers_ask_for_no_thinking_unless_the_client_chose(client, fakes):
    client.chat.completions.create(model=MODELS["qwen"], messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="enable_thinking"):
        client.chat.completions.create(model=MODELS["qwen"], messages=MESSAGES, extra_body={"enable_thinking": True})
    assert [request.body.get("enable_thinking") for request in fakes["qwen"].requests] == [False, True]


def test_a_client_that_asked_for_no_usage_gets_none_but_the_call_is_billed(client):
    stream = list(client.chat.completions.create(model=MODELS["moonshot"], messages=MESSAGES, stream=True))
    assert all(chunk.usage is None for chunk in stream)
    assert all("usage" not in (chunk.choices[0].model_extra or {}) for chunk in stream if chunk.choices)
    assert consume_logs(1, model=MODELS["moonshot"])[0].quota == QUOTA


@pytest.mark.parametrize("preset", PRESETS, ids=[preset.slug for preset in PRESETS])
def test_a_preset_channel_without_a_base_url_calls_the_providers_api(preset):
    channel = ChannelInfo(1, "preset", preset.slug, "sk-key", "", 0, 1)
    request = RelayRequest("chat", "m", {"model": "m"}, b'{"model": "m"}', stream=False, wants_usage=False)
    built = PRESET_ADAPTORS[preset.slug].build_request(request, channel)
    api_root = preset.base_url if urlsplit(preset.base_url).path else preset.base_url + "/v1"
    assert built.url == f"{api_root}/chat/completions"
    assert built.headers["Authorization"] == "Bearer sk-key"


def test_claude_code_on_a_deepseek_channel_gets_the_reasoning_as_thinking_and_the_cache_hits_billed(gateway):
    server, key = gateway
    client = anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)
    message = client.messages.create(model=MODELS["deepseek"], max_tokens=256, messages=MESSAGES)
    thinking, text = message.content
    assert (thinking.type, thinking.thinking) == ("thinking", preset_upstream.REASONING)
    assert (text.type, text.text) == ("text", preset_upstream.REPLY)
    assert message.usage.cache_read_input_tokens == preset_upstream.CACHED_TOKENS
    assert consume_logs(1, model=MODELS["deepseek"])[0].quota == QUOTA


def test_mistral_says_which_field_it_refused():
    detail = [{"type": "extra_forbidden", "loc": ["body", "logit_bias"], "msg": "Extra inputs are not permitted"}]
    body = {"object": "error", "message": {"detail": detail}, "type": "invalid_request_error"}
    failure = PRESET_ADAPTORS["mistral"].parse_error(422, orjson.dumps(body))
    assert (failure.status, failure.permanent) == (422, False)
    assert "logit_bias" in failure.message and "Extra inputs are not permitted" in failure.message
