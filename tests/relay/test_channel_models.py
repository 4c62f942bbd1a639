"""Fetch models: each provider's model list, asked through its adaptor and read in its own format."""

import pytest

from channels_app.routing import channel_info
from relay import channel_models
from relay.adaptors.zhipu import ZhipuAdaptor
from tests.support.factories import make_channel
from tests.support.fakes import model_lists

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def lists_url() -> str:
    return model_lists.start()


@pytest.mark.parametrize(
    ("channel_type", "expected"),
    [
        ("gemini", model_lists.GEMINI_MODELS),
        ("anthropic", model_lists.ANTHROPIC_MODELS),
        ("ollama", model_lists.OLLAMA_MODELS),
    ],
)
def test_each_provider_lists_its_models(lists_url, channel_type, expected):
    channel = make_channel(lists_url, type=channel_type, key=model_lists.KEY)
    assert channel_models.fetch_models(channel) == sorted(expected)


def test_openai_compatible_types_ask_their_own_api_root(transactional_db):
    channel = make_channel("https://open.bigmodel.cn", type="zhipu", key="an-id.a-secret")
    request = ZhipuAdaptor().model_list_request(channel_info(channel))
    assert request is not None and request.method == "GET"
    assert request.url == "https://open.bigmodel.cn/api/paas/v4/models"
    assert request.headers["Authorization"].startswith("Bearer ey")  # its signed token, as for chat


def test_a_refusal_is_reported_without_the_key(lists_url, transactional_db):
    channel = make_channel(lists_url, type="gemini", key="AIza-wrong-but-secret")
    with pytest.raises(channel_models.NoModelList) as refused:
        channel_models.fetch_models(channel)
    assert str(refused.value) == "The upstream did not list its models: 400 API key not valid: ***"


def test_an_unreachable_upstream_is_a_clear_message(transactional_db):
    channel = make_channel("http://127.0.0.1:9", type="openai")
    with pytest.raises(channel_models.NoModelList, match="upstream unreachable: connection refused"):
        channel_models.fetch_models(channel)


@pytest.mark.parametrize("channel_type", ["azure", "custom", "jina", "cohere", "dify", "vertex"])
def test_providers_without_a_list_say_so(channel_type, transactional_db):
    channel = make_channel("https://x.example", type=channel_type)
    with pytest.raises(channel_models.NoModelList, match="channels have no model list to fetch"):
        channel_models.fetch_models(channel)
