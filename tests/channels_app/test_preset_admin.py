"""Adding a preset channel in admin takes two choices: its type and its key. The type's base URL, models and
name are the placeholders of the fields left empty, and what the channel gets."""

import pytest

from channels_app.models import Channel
from tests.support.factories import CHANNEL_FORM, make_channel

pytestmark = pytest.mark.django_db(transaction=True)

ADD_URL = "/admin/channels_app/channel/add/"


def test_a_type_and_a_key_make_a_working_channel(admin_client):
    typed = {**CHANNEL_FORM, "name": "", "type": "deepseek", "models": "", "new_key": "sk-deepseek-key"}
    response = admin_client.post(ADD_URL, typed)
    assert response.status_code == 302, response.context["adminform"].form.errors
    channel = Channel.objects.get()
    assert (channel.name, channel.type, channel.base_url, channel.key) == (
        "deepseek",
        "deepseek",
        "",
        "sk-deepseek-key",
    )
    assert channel.models == ["deepseek-chat", "deepseek-reasoner"]


def test_a_type_without_default_models_still_needs_them(admin_client):
    response = admin_client.post(ADD_URL, {**CHANNEL_FORM, "type": "custom", "models": "", "new_key": "sk-key"})
    assert response.status_code == 200 and "models" in response.context["adminform"].form.errors
    assert not Channel.objects.exists()


def test_the_page_shows_the_types_defaults_as_placeholders(admin_client):
    channel = make_channel("", ["kimi-k2-thinking"], type="moonshot")
    page = admin_client.get(f"/admin/channels_app/channel/{channel.pk}/change/").content.decode()
    assert 'placeholder="https://api.moonshot.cn/v1"' in page
    assert "data-defaults=" in page and "https://api.groq.com/openai/v1" in page
    assert 'placeholder="https://api.openai.com"' in admin_client.get(ADD_URL).content.decode()
