"""Counting a long answer locally: on a worker thread (tiktoken lets go of the GIL), in segments whose token
lists stay small, and from text that a long stream keeps in a few large strings."""

import random
import threading

import pytest

from relay import endpoints, tokenizer
from relay.adaptors.base import RelayRequest, TextParts, Usage


def chat_request() -> RelayRequest:
    return RelayRequest("chat", "gpt-4o", {}, raw=b"{}", stream=True, wants_usage=False)


async def test_only_a_long_answer_or_an_unbuilt_encoding_is_counted_on_another_thread(monkeypatch):
    threads = []
    endpoint = endpoints.Chat()

    def local_usage(request: RelayRequest, prompt_tokens: int, text: str) -> Usage:
        threads.append(threading.current_thread())
        return Usage(prompt_tokens, 1)

    monkeypatch.setattr(endpoint, "local_usage", local_usage)
    tokenizer.encoding_for("gpt-4o")
    await endpoints.count_usage(endpoint, chat_request(), 1, "a" * endpoints.LARGE_BODY_BYTES)
    await endpoints.count_usage(endpoint, chat_request(), 1, "a short answer")
    monkeypatch.setattr(tokenizer, "_built", {})
    await endpoints.count_usage(endpoint, chat_request(), 1, "a short answer")
    assert [thread is threading.current_thread() for thread in threads] == [False, True, False]


TRICKY = list("abcXYZ éü日本語 \n\t.,'!?0123456789_²½🙂-/\r") + ["'s", "'ll", " \n", "\n\n", "\u0301", "ǅ"]


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-3.5-turbo"], ids=["o200k_base", "cl100k_base"])
def test_a_text_counted_in_segments_has_the_tokens_of_the_whole(monkeypatch, model):
    encoding = tokenizer.encoding_for(model)
    rng = random.Random(12)
    cut = 0
    for _ in range(2000):
        text = "".join(rng.choice(TRICKY) for _ in range(rng.randint(1, 300)))
        monkeypatch.setattr(tokenizer, "SEGMENT_CHARS", rng.randint(1, 30))
        cut += len(list(tokenizer.segments(text))) > 1
        assert tokenizer.count_text(model, text) == len(encoding.encode(text, disallowed_special=())), repr(text)
    assert cut > 1000  # most texts were counted in more than one segment


def test_a_long_text_is_cut_into_segments_of_about_the_segment_size():
    text = "lorem ipsum dolor sit amet " * 100_000
    pieces = list(tokenizer.segments(text))
    assert "".join(pieces) == text
    assert len(pieces) == len(text) // tokenizer.SEGMENT_CHARS + 1
    assert list(tokenizer.segments("a" * (3 * tokenizer.SEGMENT_CHARS))) == ["a" * (3 * tokenizer.SEGMENT_CHARS)]


def test_a_streams_text_is_kept_in_few_strings():
    parts = TextParts()
    deltas = [f"w{number} " for number in range(3 * TextParts.BATCH + 5)]
    for delta in deltas:
        parts.append(delta)
    assert (len(parts.batches), len(parts.recent)) == (3, 5)
    assert str(parts) == "".join(deltas)
    assert parts.size == len("".join(deltas))
