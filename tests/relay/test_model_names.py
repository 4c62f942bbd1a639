"""Model names cannot steer upstream URLs: a name that could (a `..` segment, `?`, `#`, a control character)
is a 400 `invalid_model` at parse, an operator's mapping to one is refused on save, and wherever a name goes
into a URL path it is percent-encoded as one segment."""

import json

import orjson
import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from channels_app import channels
from channels_app.models import Channel
from channels_app.routing import ChannelInfo
from relay.adaptors import vertex
from relay.adaptors.azure import AzureAdaptor
from relay.adaptors.custom import CustomAdaptor
from relay.adaptors.gemini import GeminiAdaptor
from tests.support.factories import CHANNEL_FORM, make_channel
from tests.support.relay_client import chat_request, post_chat

pytestmark = pytest.mark.django_db(transaction=True)

STEERING = [
    "gpt-4o/../../admin",
    "../gpt-4o",
    "gpt-4o/.",
    "gpt-4o?api-version=1",
    "gpt-4o#fragment",
    "gpt-4o\r\nX-Injected: yes",
    "gpt-4o\n",
    "gpt-4o\x00",
    "gpt-4o\x7f",
    "gpt-4o\x85",
]
ODD_BUT_SAFE = "org/a b:c@d%2e..e"  # slashes, spaces, colons, '@', '%' and dots inside a segment are fine


@pytest.fixture
def serves_everything(fake_openai, transactional_db):
    """A channel whose `gpt*` entry serves any name starting with gpt, as an operator's wildcard would."""
    return make_channel(fake_openai.url, models=["gpt*", "org/*"])


@pytest.mark.parametrize("model", STEERING)
async def test_a_model_name_that_could_steer_a_url_is_a_400_invalid_model(
    alice_key, serves_everything, fake_openai, model
):
    response = await post_chat(alice_key, {"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400
    error = orjson.loads(response.content)["error"]
    assert (error["code"], error["param"]) == ("invalid_model", "model")
    assert not fake_openai.requests


async def test_a_model_name_with_slashes_and_dots_inside_its_segments_is_served(
    alice_key, serves_everything, fake_openai
):
    response = await post_chat(alice_key, {"model": ODD_BUT_SAFE, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.content


def channel(type: str, base_url: str, mapped_to: str, **fields) -> ChannelInfo:
    return ChannelInfo(
        id=1,
        name=type,
        type=type,
        key="k",
        base_url=base_url,
        priority=0,
        weight=1,
        model_mapping={"alias": mapped_to},
        **fields,
    )


def sent_to(adaptor, info: ChannelInfo) -> str:
    return adaptor.build_request(
        chat_request({"model": "alias", "messages": [{"role": "user", "content": "hi"}]}), info
    ).url


@pytest.mark.parametrize("mapped_to", ["../../v1/admin?x=1#y", "a/b c", "x\r\ny"])
def test_a_custom_channels_model_template_gets_the_name_as_one_path_segment(mapped_to):
    url = sent_to(CustomAdaptor(), channel("custom", "https://up.example/models/{model}/chat", mapped_to))
    segment = url.removeprefix("https://up.example/models/").removesuffix("/chat")
    assert "/" not in segment and "?" not in segment and "#" not in segment and "\n" not in segment
    assert url.count("/") == "https://up.example/models/x/chat".count("/")


def test_an_azure_deployment_is_one_path_segment():
    url = sent_to(AzureAdaptor(), channel("azure", "https://res.openai.azure.com", "a/b?c#d"))
    assert url == (
        "https://res.openai.azure.com/openai/deployments/a%2Fb%3Fc%23d/chat/completions?api-version=2024-10-21"
    )


def test_gemini_and_vertex_model_paths_are_one_segment():
    gemini_url = sent_to(GeminiAdaptor(), channel("gemini", "https://g.example", "gemini/../x?y"))
    assert gemini_url.startswith("https://g.example/v1beta/models/gemini%2F..%2Fx%3Fy:generateContent?")
    location = vertex.Location("https://v.example", "p", "r")
    request = chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert vertex.gemini_call(request, location, "gemini/../x")[0].endswith("/models/gemini%2F..%2Fx:generateContent")
    claude_url = vertex.claude_call(request, location, "claude-3-5-haiku@20241022/../x")[0]
    assert claude_url.endswith("/models/claude-3-5-haiku@20241022%2F..%2Fx:rawPredict")


@pytest.mark.parametrize("target", ["../gpt-4o", "gpt-4o?x", "gpt-4o\r\n"])
def test_a_model_mapping_to_a_name_that_could_steer_a_url_is_refused_on_save(target, transactional_db):
    with pytest.raises(ValidationError) as refused:
        channels.create_channel(key="sk-x", models=["gpt-4o"], model_mapping={"gpt-4o": target})
    assert "model_mapping" in refused.value.message_dict


def test_the_management_api_names_the_bad_mapping_and_test_model(access_token):
    def create(**fields) -> dict:
        body = {"key": "sk-x", "models": ["gpt-4o"], **fields}
        headers = {"Authorization": f"Bearer {access_token}"}
        response = Client().post("/api/channels", json.dumps(body), content_type="application/json", headers=headers)
        assert response.status_code == 422, response.content
        return response.json()

    assert create(model_mapping={"gpt-4o": "a#b"})["detail"].startswith("model_mapping:")
    assert create(test_model="gpt-4o/..")["detail"].startswith("test_model:")


def test_admin_refuses_a_mapping_to_a_name_that_could_steer_a_url(root):
    admin = Client()
    admin.force_login(root)
    form = {**CHANNEL_FORM, "new_key": "sk-admin", "model_mapping": '{"gpt-4o": "../x"}'}
    response = admin.post("/admin/channels_app/channel/add/", form)
    assert response.status_code == 200 and "the upstream model name must not contain" in response.content.decode()
    assert not Channel.objects.exists()
