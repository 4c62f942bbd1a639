"""01.AI (Yi) channels: OpenAI's wire format on 01.AI's host, with Yi models priced by default."""

import math

import orjson
import pytest

from billing.pricing import DEFAULT_MODEL_RATIO_TABLE
from channels_app.routing import ChannelInfo
from relay.adaptors.lingyi import LingyiAdaptor
from tests.support.factories import make_channel
from tests.support.fakes.openai_upstream import PROMPT_TOKENS, REPLY_PIECES
from tests.support.relay_client import chat_request, consume_log, post_chat

pytestmark = pytest.mark.django_db(transaction=True)

YI_MODELS = (
    "yi-large",
    "yi-medium",
    "yi-medium-200k",
    "yi-spark",
    "yi-vision",
    "yi-large-turbo",
    "yi-large-rag",
    "yi-large-preview",
    "yi-lightning",
)


def test_it_calls_01_ai_when_the_channel_leaves_the_base_url_empty():
    channel = ChannelInfo(id=1, name="yi", type="lingyi", key="yi-key", base_url="", priority=0, weight=1)
    body = {"model": "yi-large", "messages": [{"role": "user", "content": "hi"}]}
    outgoing = LingyiAdaptor().build_request(chat_request(body), channel)
    assert outgoing.url == "https://api.lingyiwanwu.com/v1/chat/completions"
    assert outgoing.headers["Authorization"] == "Bearer yi-key"


def test_every_yi_model_has_a_default_price():
    assert all(DEFAULT_MODEL_RATIO_TABLE.get(model, 0) > 0 for model in YI_MODELS)


@pytest.fixture
def yi_channel(fake_openai, transactional_db):
    return make_channel(fake_openai.url, models=list(YI_MODELS), type="lingyi")


async def test_it_relays_and_bills_a_yi_model_at_its_price(alice_key, yi_channel, fake_openai):
    response = await post_chat(alice_key, {"model": "yi-lightning", "messages": [{"role": "user", "content": "hi"}]})
    assert orjson.loads(response.content)["model"] == "yi-lightning"
    log = await consume_log(response["X-Request-Id"])
    completion = len(REPLY_PIECES)
    assert log.quota == math.ceil(round((PROMPT_TOKENS + completion) * DEFAULT_MODEL_RATIO_TABLE["yi-lightning"], 6))
