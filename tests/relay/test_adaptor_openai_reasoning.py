"""The OpenAI adaptor fits a chat body to the upstream model: reasoning models take `max_completion_tokens`
(OpenAI refuses `max_tokens` there), older chat models no `reasoning_effort`. A Messages request converted to
chat carries both whatever model the channel maps it to (Claude Code -> a GPT channel)."""

import orjson
import pytest

from channels_app.routing import ChannelInfo
from relay.adaptors.base import RelayRequest
from relay.adaptors.openai import OpenAIAdaptor


def sent(body: dict, mapping: dict | None = None) -> tuple[dict, bytes]:
    raw = orjson.dumps(body)
    request = RelayRequest("chat", body["model"], body, raw, stream=False, wants_usage=False)
    channel = ChannelInfo(
        id=1, name="openai", type="openai", key="sk-upstream", base_url="", priority=0, weight=1,
        model_mapping=mapping or {},
    )  # fmt: skip
    content = OpenAIAdaptor().build_request(request, channel).content
    return orjson.loads(content), content


HELLO = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("model", ["o3-mini", "o4-mini", "gpt-5", "gpt-5.1-codex", "o1"])
def test_reasoning_models_get_max_completion_tokens(model: str) -> None:
    body, _ = sent({"model": model, "messages": HELLO, "max_tokens": 300, "reasoning_effort": "high"})
    assert body["max_completion_tokens"] == 300 and "max_tokens" not in body
    assert body["reasoning_effort"] == "high"


def test_a_client_s_own_max_completion_tokens_wins() -> None:
    body, _ = sent({"model": "gpt-5", "messages": HELLO, "max_tokens": 300, "max_completion_tokens": 900})
    assert body["max_completion_tokens"] == 900 and "max_tokens" not in body


def test_a_mapped_model_is_fitted_by_its_upstream_name() -> None:
    body, _ = sent(
        {"model": "claude-sonnet-4-5", "messages": HELLO, "max_tokens": 64, "reasoning_effort": "medium"},
        mapping={"claude-sonnet-4-5": "gpt-4o"},
    )
    assert body == {"model": "gpt-4o", "messages": HELLO, "max_tokens": 64}


def test_other_bodies_pass_byte_for_byte() -> None:
    raw_body = {"model": "gpt-4o", "messages": HELLO, "max_tokens": 64}
    _, content = sent(raw_body)
    assert content == orjson.dumps(raw_body)
    deepseek = {"model": "deepseek-reasoner", "messages": HELLO, "max_tokens": 64, "reasoning_effort": "low"}
    assert sent(deepseek)[1] == orjson.dumps(deepseek)
