"""Token counts are exact for both encodings, with no network: BPE files come from the bpe-openai wheel."""

import bpe_openai
import pytest

from relay.tokenizer import Tokens, count_messages, count_text, encoding, encoding_for, utf8_bytes

SAMPLES = [
    "hello world",
    "tiktoken is great!",
    "Lisbon. It is sunny, 21 °C.",
    "日本語のテキスト",
    "def f(x):\n    return x",
]


def test_cl100k_matches_known_token_ids():
    assert encoding("cl100k_base").encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]


def test_o200k_matches_known_token_ids():
    assert encoding("o200k_base").encode("tiktoken is great!") == [83, 8251, 2488, 382, 2212, 0]
    assert encoding("o200k_base").encode("hello world") == [24912, 2375]


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
@pytest.mark.parametrize("text", SAMPLES)
def test_counts_agree_with_an_independent_tokenizer(name, text):
    assert encoding(name).encode(text) == bpe_openai.get_encoding(name).encode(text)


def test_model_families_pick_their_encoding():
    assert encoding_for("gpt-4o-mini").name == "o200k_base"
    assert encoding_for("o3-mini").name == "o200k_base"
    assert encoding_for("gpt-4").name == "cl100k_base"
    assert encoding_for("claude-3-5-sonnet").name == "cl100k_base"


def test_chat_overhead_is_three_per_message_one_per_name_and_three_for_the_reply():
    messages = [{"role": "system", "content": "hello world"}, {"role": "user", "name": "bob", "content": "hi"}]

    def t(text: str) -> int:
        return count_text("gpt-4o", text)

    first = 3 + t("system") + t("hello world")
    second = 3 + t("user") + t("bob") + 1 + t("hi")
    assert count_messages(messages, Tokens("gpt-4o")) == 3 + first + second


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
@pytest.mark.parametrize("text", [*SAMPLES, "<|endoftext|>", "\U0001f642" * 50, " " * 1000, "\x00\xff", ""])
def test_the_byte_bound_is_never_below_the_exact_count(model, text):
    assert utf8_bytes(text) >= Tokens(model)(text)
