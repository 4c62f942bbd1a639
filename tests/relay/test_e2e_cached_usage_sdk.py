"""Cache-aware billing end to end: the real server, the official SDK, fakes that report cached and cache-written
tokens in each provider's wire format. The consume log's quota is the formula to the unit, and its split
columns are what the provider reported, for stream and non-stream alike."""

import math
from dataclasses import dataclass

import openai
import pytest

from tests.support.factories import make_channel, make_key
from tests.support.fakes import anthropic_upstream, gemini_upstream, openai_upstream
from tests.support.fakes.openai_upstream import FakeOpenAI, start
from tests.support.fakes.recording import Behaviour as VertexBehaviour
from tests.support.live_server import LiveGateway, consume_logs, set_prices

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "user", "content": "Summarise the cached document."}]
MODEL_RATIO, COMPLETION_RATIO = 2.0, 3.0
CACHE_RATIO, CREATE_CACHE_RATIO, CREATE_CACHE_RATIO_1H = 0.1, 1.25, 2.0


@dataclass(frozen=True)
class Split:
    prompt: int  # every input token, as OpenAI counts them
    completion: int
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0

    def quota(self) -> int:
        uncached = self.prompt - self.cache_read - self.cache_write_5m - self.cache_write_1h
        raw = (
            uncached
            + self.cache_read * CACHE_RATIO
            + self.cache_write_5m * CREATE_CACHE_RATIO
            + self.cache_write_1h * CREATE_CACHE_RATIO_1H
            + self.completion * COMPLETION_RATIO
        ) * MODEL_RATIO
        return math.ceil(round(raw, 6))


OPENAI_SPLIT = Split(
    openai_upstream.PROMPT_TOKENS,
    len(openai_upstream.REPLY_PIECES),
    cache_read=openai_upstream.CACHED_TOKENS,
    reasoning=openai_upstream.REASONING_TOKENS,
)
DEEPSEEK_SPLIT = Split(
    openai_upstream.PROMPT_TOKENS, len(openai_upstream.REPLY_PIECES), cache_read=openai_upstream.CACHED_TOKENS
)
CLAUDE_SPLIT = Split(
    anthropic_upstream.PROMPT_TOKENS
    + anthropic_upstream.CACHE_WRITE_5M_TOKENS
    + anthropic_upstream.CACHE_WRITE_1H_TOKENS,
    anthropic_upstream.OUTPUT_TOKENS,
    cache_read=anthropic_upstream.CACHE_READ_TOKENS,
    cache_write_5m=anthropic_upstream.CACHE_WRITE_5M_TOKENS,
    cache_write_1h=anthropic_upstream.CACHE_WRITE_1H_TOKENS,
)
GEMINI_SPLIT = Split(
    gemini_upstream.PROMPT_TOKENS,
    gemini_upstream.COMPLETION_TOKENS,
    cache_read=gemini_upstream.CACHED_TOKENS,
    reasoning=gemini_upstream.THOUGHT_TOKENS,
)
CASES = {  # model -> (its channel's fake, the behaviour that reports a cache hit, the split it reports)
    "gpt-4.1": ("openai", openai_upstream.Behaviour(cached=True), OPENAI_SPLIT),
    "deepseek-chat": ("deepseek", openai_upstream.Behaviour(cached=True, deepseek=True), DEEPSEEK_SPLIT),
    "claude-opus-4-1": ("anthropic", anthropic_upstream.Behaviour(cache_writes=True), CLAUDE_SPLIT),
    "gemini-2.5-flash": ("gemini", gemini_upstream.Behaviour(cached=True), GEMINI_SPLIT),
    "claude-sonnet-4-5": ("vertex", VertexBehaviour(cached=True), CLAUDE_SPLIT),
    "gemini-2.5-pro": ("vertex", VertexBehaviour(cached=True), GEMINI_SPLIT),
}


@pytest.fixture(scope="module")
def fakes() -> dict:
    started = {
        "openai": FakeOpenAI(),
        "deepseek": FakeOpenAI(),
        "anthropic": anthropic_upstream.FakeAnthropic(),
        "gemini": gemini_upstream.FakeGemini(),
    }
    for fake in started.values():
        start(fake)
    return started


def channels(fakes: dict, fake_vertex, account_json: str) -> None:
    make_channel(fakes["openai"].url, models=["gpt-4.1"], name="openai")
    make_channel(fakes["deepseek"].url, models=["deepseek-chat"], name="deepseek")
    anthropic = fakes["anthropic"]
    make_channel(anthropic.url, models=["claude-opus-4-1"], key=anthropic_upstream.API_KEY, type="anthropic")
    make_channel(fakes["gemini"].url, models=["gemini-2.5-flash"], key=gemini_upstream.API_KEY, type="gemini")
    make_channel(fake_vertex.url, models=["claude-sonnet-4-5", "gemini-2.5-pro"], key=account_json, type="vertex")


def cache_prices(server: LiveGateway, access_token: str) -> None:
    """The operator's prices with cache lanes, through the management API (new-api's names)."""
    set_prices(
        server.url,
        access_token,
        list(CASES),
        model_ratio=MODEL_RATIO,
        completion_ratio=COMPLETION_RATIO,
        cache_ratio=CACHE_RATIO,
        create_cache_ratio=CREATE_CACHE_RATIO,
        create_cache_ratio_1h=CREATE_CACHE_RATIO_1H,
    )


@pytest.fixture
def client(alice, access_token, fakes, fake_vertex, account_json):
    for fake in fakes.values():
        fake.script.clear()
        fake.requests.clear()
    channels(fakes, fake_vertex, account_json)
    _, key = make_key(alice)
    server = LiveGateway()
    cache_prices(server, access_token)
    yield openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    server.stop()


def script(fakes: dict, fake_vertex, name: str, behaviour: object) -> None:
    (fake_vertex if name == "vertex" else fakes[name]).script.append(behaviour)


def assert_usage(usage, split: Split) -> None:
    """What the client is told, in OpenAI's fields."""
    assert (usage.prompt_tokens, usage.completion_tokens) == (split.prompt, split.completion)
    assert usage.prompt_tokens_details.cached_tokens == split.cache_read
    reasoning = usage.completion_tokens_details.reasoning_tokens if usage.completion_tokens_details else 0
    assert reasoning == split.reasoning


@pytest.mark.parametrize("model", list(CASES))
def test_the_log_bills_the_cache_split_by_the_formula(client, fakes, fake_vertex, model):
    name, behaviour, split = CASES[model]
    script(fakes, fake_vertex, name, behaviour)
    script(fakes, fake_vertex, name, behaviour)

    answer = client.chat.completions.create(model=model, messages=MESSAGES)
    assert_usage(answer.usage, split)
    stream = list(
        client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert_usage(stream[-1].usage, split)

    logs = consume_logs(2, model=model)
    assert [log.is_stream for log in logs] == [False, True]
    for log in logs:
        assert log.quota == split.quota(), log.content
        assert (log.prompt_tokens, log.completion_tokens) == (split.prompt, split.completion)
        assert (log.cache_read_tokens, log.cache_write_5m_tokens, log.cache_write_1h_tokens) == (
            split.cache_read,
            split.cache_write_5m,
            split.cache_write_1h,
        )
        assert log.reasoning_tokens == split.reasoning
