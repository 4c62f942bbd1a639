"""OpenAI-style usage in each dialect an OpenAI-compatible upstream speaks, whole and streamed."""

import orjson
import pytest

from relay.adaptors.base import Usage
from relay.adaptors.openai import OpenAIAdaptor
from relay.adaptors.openai_format import openai_usage, usage_object
from relay.adaptors.zhipu import ZhipuAdaptor
from tests.support.fakes import openai_upstream as fake
from tests.support.fakes import zhipu_upstream
from tests.support.fakes.recording import Behaviour as RecordedBehaviour
from tests.support.relay_client import chat_request

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION_TOKENS = len(fake.REPLY_PIECES)
CACHED = Usage(
    fake.PROMPT_TOKENS, COMPLETION_TOKENS, cache_read_tokens=fake.CACHED_TOKENS, reasoning_tokens=fake.REASONING_TOKENS
)


def streamed_usage(adaptor: OpenAIAdaptor, behaviour: fake.Behaviour) -> Usage | None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    converter = adaptor.stream_converter(chat_request(body))
    for line in fake.stream_chunks(body, behaviour):
        converter.feed(line.removeprefix(b"data: ").strip())
    return converter.state.usage


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {
                "prompt_tokens": 100,
                "completion_tokens": 30,
                "prompt_tokens_details": {"cached_tokens": 64},
                "completion_tokens_details": {"reasoning_tokens": 20},
            },
            Usage(100, 30, cache_read_tokens=64, reasoning_tokens=20),
        ),
        (  # DeepSeek: prompt_tokens is hit + miss
            {
                "prompt_tokens": 100,
                "completion_tokens": 5,
                "prompt_cache_hit_tokens": 96,
                "prompt_cache_miss_tokens": 4,
            },
            Usage(100, 5, cache_read_tokens=96),
        ),
        (  # DeepSeek-style without prompt_tokens
            {"completion_tokens": 5, "prompt_cache_hit_tokens": 96, "prompt_cache_miss_tokens": 4},
            Usage(100, 5, cache_read_tokens=96),
        ),
        (  # the Responses API's names
            {
                "input_tokens": 50,
                "output_tokens": 7,
                "input_tokens_details": {"cached_tokens": 32},
                "output_tokens_details": {"reasoning_tokens": 3},
            },
            Usage(50, 7, cache_read_tokens=32, reasoning_tokens=3),
        ),
        ({"prompt_tokens": 9, "completion_tokens": 1, "prompt_tokens_details": None}, Usage(9, 1)),
    ],
    ids=["chat", "deepseek", "deepseek-without-prompt-tokens", "responses", "null-details"],
)
def test_it_reads_each_dialect(usage, expected):
    assert openai_usage(usage) == expected


@pytest.mark.parametrize("usage", [None, "12", {}, {"prompt_tokens": 0, "completion_tokens": 0}])
def test_missing_or_zero_usage_means_count_it_ourselves(usage):
    assert openai_usage(usage) is None


@pytest.mark.parametrize("deepseek", [False, True], ids=["openai", "deepseek"])
def test_a_whole_answer_and_a_stream_report_the_cache_hit(deepseek):
    behaviour = fake.Behaviour(cached=True, deepseek=deepseek)
    content = orjson.dumps(fake.completion(CHAT, behaviour))
    answer, usage, _ = OpenAIAdaptor().convert_response(chat_request(CHAT), content)
    expected = CACHED if not deepseek else Usage(fake.PROMPT_TOKENS, COMPLETION_TOKENS, fake.CACHED_TOKENS)
    assert usage == expected
    assert streamed_usage(OpenAIAdaptor(), behaviour) == expected
    if deepseek:  # OpenAI's field is added beside DeepSeek's own, where clients look for it
        details = orjson.loads(answer)["usage"]["prompt_tokens_details"]
        assert details == {"cached_tokens": fake.CACHED_TOKENS}
    else:
        assert answer == content  # relayed as is: it has the split in OpenAI's fields already


def test_zhipu_reports_its_cache_hit_in_openai_fields():
    body = orjson.dumps({"choices": [], "usage": zhipu_upstream.usage(RecordedBehaviour(cached=True))})
    _, usage, _ = ZhipuAdaptor().convert_response(chat_request({**CHAT, "model": "glm-4"}), body)
    assert usage == Usage(
        zhipu_upstream.PROMPT_TOKENS, zhipu_upstream.COMPLETION_TOKENS, cache_read_tokens=zhipu_upstream.CACHED_TOKENS
    )


def test_converted_usage_shows_the_split_in_openai_fields():
    assert usage_object(Usage(100, 30, cache_read_tokens=64, cache_write_5m_tokens=6, reasoning_tokens=20)) == {
        "prompt_tokens": 100,
        "completion_tokens": 30,
        "total_tokens": 130,
        "prompt_tokens_details": {"cached_tokens": 64},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    assert usage_object(Usage(3, 4)) == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
