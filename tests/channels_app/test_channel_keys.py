"""A channel key that an HTTP header cannot carry (a line break, another control character, a non-ASCII
letter) is refused when the channel is saved, wherever it is saved; a row saved before that check fails
as a channel, not as the gateway."""

import asyncio
import json

import orjson
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client

from billing.models import Log
from channels_app import channels
from channels_app.models import Channel
from tests.support.factories import CHANNEL_FORM, make_channel
from tests.support.relay_client import post_chat

pytestmark = pytest.mark.django_db(transaction=True)

UNSENDABLE = ["sk-ke\ry", "sk-\x00key", "sk-\x7fkey", "sk-\tkey", "sk-kéy"]


@pytest.mark.parametrize("key", UNSENDABLE)
def test_a_key_no_header_can_carry_is_refused_on_create_and_update(key, transactional_db):
    with pytest.raises(ValidationError) as refused:
        channels.create_channel(key=key, models=["gpt-4o"])
    assert "HTTP header" in refused.value.message_dict["key"][0]
    channel = make_channel("http://up.example")
    with pytest.raises(ValidationError):
        channels.update_channel(channel, {"key": key})
    channel.refresh_from_db()
    assert channel.key == "sk-upstream-secret"


def test_a_vertex_key_is_a_multi_line_json_and_is_not_held_to_the_header_rule(transactional_db):
    channel = Channel(name="v", type="vertex", models=["gemini-1.5-pro"], base_url="")
    channel.key = '{\n  "type": "service_account"\n}'
    channel.clean()


@pytest.mark.backend
def test_the_management_api_answers_422_naming_the_key(access_token):
    body = {"key": "sk-one\x01sk-two", "models": ["gpt-4o"]}
    headers = {"Authorization": f"Bearer {access_token}"}
    response = Client().post("/api/channels", json.dumps(body), content_type="application/json", headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("key: must be printable ASCII")
    assert not Channel.objects.exists()


def test_admin_shows_the_problem_on_the_key_field(root):
    admin = Client()
    admin.force_login(root)
    response = admin.post("/admin/channels_app/channel/add/", {**CHANNEL_FORM, "new_key": "sk-a\x01b"})
    assert response.status_code == 200 and "must be printable ASCII" in response.content.decode()
    assert not Channel.objects.exists()


def test_channel_add_refuses_it_with_the_reason(transactional_db):
    with pytest.raises(CommandError, match="key: must be printable ASCII"):
        call_command("channel_add", "--type", "openai", "--key", "sk-a\x01b", "--models", "gpt-4o")
    assert not Channel.objects.exists()


@pytest.mark.backend
async def test_a_stored_key_with_a_line_break_fails_that_channel_and_the_next_one_serves(
    alice_key, fake_openai, transactional_db
):
    def stored_before_the_check() -> None:
        broken = make_channel(fake_openai.url, name="broken", priority=10)
        Channel.objects.filter(pk=broken.pk).update(key_encrypted=Channel(key="sk-one\nsk-two").key_encrypted)
        make_channel(fake_openai.url, name="good")

    await asyncio.to_thread(stored_before_the_check)
    response = await post_chat(alice_key)
    assert response.status_code == 200, response.content
    assert [request.headers["Authorization"] for request in fake_openai.requests] == ["Bearer sk-upstream-secret"]


@pytest.mark.backend
async def test_a_stored_key_with_a_line_break_alone_is_a_channel_error_without_the_key(
    alice_key, fake_openai, transactional_db
):
    def stored_before_the_check() -> None:
        broken = make_channel(fake_openai.url, name="broken")
        Channel.objects.filter(pk=broken.pk).update(key_encrypted=Channel(key="sk-one\nsk-two").key_encrypted)

    await asyncio.to_thread(stored_before_the_check)
    response = await post_chat(alice_key)
    assert response.status_code == 500
    error = orjson.loads(response.content)["error"]
    assert error["code"] == "invalid_channel_key" and "sk-one" not in response.content.decode()
    assert not fake_openai.requests
    assert await Log.objects.filter(type=Log.Type.ERROR).aexists()
