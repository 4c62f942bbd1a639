"""The channel admin without JSON typing: lists typed as text, a failed save that keeps what was typed, and
the Test and Fetch models buttons."""

import pytest

from billing.models import AuditEntry
from channels_app.models import Channel
from tests.support.factories import CHANNEL_FORM, make_channel
from tests.support.fakes.openai_upstream import MODEL_LIST, Behaviour

pytestmark = pytest.mark.django_db(transaction=True)

ADD_URL = "/admin/channels_app/channel/add/"
CHANGELIST = "/admin/channels_app/channel/"
SECRET = "sk-upstream-secret"


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_models_and_groups_are_typed_as_comma_or_line_lists(admin_client):
    typed = {"models": "gpt-4o, gpt-4o-mini\n\n gpt-4o ,claude-*,", "groups": "default\nvip, default"}
    response = admin_client.post(ADD_URL, {**CHANNEL_FORM, **typed, "new_key": SECRET})
    assert response.status_code == 302
    channel = Channel.objects.get(name="admin-made")
    assert channel.models == ["gpt-4o", "gpt-4o-mini", "claude-*"]
    assert channel.groups == ["default", "vip"]
    page = admin_client.get(f"/admin/channels_app/channel/{channel.pk}/change/").content.decode()
    assert "gpt-4o, gpt-4o-mini, claude-*</textarea>" in page and "default, vip</textarea>" in page


def test_a_json_array_is_still_accepted_and_a_broken_one_is_a_clear_error(admin_client):
    response = admin_client.post(ADD_URL, {**CHANNEL_FORM, "models": '["a", "b", "a"]', "new_key": SECRET})
    assert response.status_code == 302 and Channel.objects.get().models == ["a", "b"]
    broken = admin_client.post(ADD_URL, {**CHANNEL_FORM, "name": "broken", "models": '["a", 1]', "new_key": SECRET})
    assert broken.status_code == 200
    errors = broken.context["adminform"].form.errors["models"]
    assert errors == ["Enter names separated by commas or lines, or a JSON array of strings."]


def test_an_empty_list_is_refused_by_the_models_own_rule(admin_client):
    response = admin_client.post(ADD_URL, {**CHANNEL_FORM, "models": " , \n", "new_key": SECRET})
    assert response.status_code == 200 and "models" in response.context["adminform"].form.errors
    assert not Channel.objects.exists()


def test_a_failed_save_keeps_what_was_typed_but_the_key_and_says_so(admin_client):
    typed = {**CHANNEL_FORM, "models": "gpt-4o, o3", "model_mapping": '{"gpt-4o": ', "new_key": SECRET}
    response = admin_client.post(ADD_URL, typed)
    assert response.status_code == 200 and not Channel.objects.exists()
    page = response.content.decode()
    form = response.context["adminform"].form
    assert form.errors["new_key"] == ["The key was not kept; enter it again."]
    assert "model_mapping" in form.errors
    assert "gpt-4o, o3</textarea>" in page and "{&quot;gpt-4o&quot;: </textarea>" in page
    assert SECRET not in page and "sk-...cret" not in page  # no hint of a key that was not kept


def test_a_failed_change_shows_the_hint_of_the_key_still_stored(admin_client, openai_channel):
    url = f"/admin/channels_app/channel/{openai_channel.pk}/change/"
    response = admin_client.post(url, {**CHANNEL_FORM, "models": "", "new_key": "sk-typed-but-refused"})
    page = response.content.decode()
    assert "sk-...cret" in page and "sk-...used" not in page
    openai_channel.refresh_from_db()
    assert openai_channel.key == SECRET


def test_the_mapping_fields_show_an_example(admin_client):
    page = admin_client.get(ADD_URL).content.decode()
    assert '{"gpt-4o": "gpt-4o-2024-08-06"}' in page and '{"400": 500}' in page  # admin shows help as HTML


def test_the_test_button_tests_one_channel_and_reports_ok_with_latency(admin_client, openai_channel, fake_openai):
    listing = admin_client.get(CHANGELIST).content.decode()
    test_url = f"/admin/channels_app/channel/{openai_channel.pk}/test/"
    assert f'formaction="{test_url}"' in listing
    response = admin_client.post(test_url, HTTP_REFERER="http://testserver" + CHANGELIST, follow=True)
    assert response.redirect_chain == [("http://testserver" + CHANGELIST, 302)]
    [message] = messages_of(response)
    assert message.startswith(f"{openai_channel}: gpt-4o answered in ") and message.endswith(" ms")
    assert [request.path for request in fake_openai.requests] == ["/v1/chat/completions"]


def test_a_failing_test_shows_the_scrubbed_failure(admin_client, openai_channel, fake_openai):
    refusal = {"error": {"message": f"Incorrect API key provided: {SECRET}", "code": "invalid_api_key"}}
    fake_openai.script.append(Behaviour(status=401, body=refusal))
    response = admin_client.post(f"/admin/channels_app/channel/{openai_channel.pk}/test/", follow=True)
    [message] = messages_of(response)
    assert "upstream answered 401: Incorrect API key provided: ***" in message and SECRET not in message


def test_the_test_button_wants_a_post_and_the_change_permission(admin_client, client, alice, openai_channel):
    url = f"/admin/channels_app/channel/{openai_channel.pk}/test/"
    assert admin_client.get(url).status_code == 405
    alice.is_staff = True
    alice.save()
    client.force_login(alice)
    assert client.post(url).status_code == 403


def test_fetch_models_lists_the_upstreams_models_and_adds_the_chosen_ones(admin_client, openai_channel, fake_openai):
    url = f"/admin/channels_app/channel/{openai_channel.pk}/models/"
    page = admin_client.get(url)
    assert [name for name, _ in page.context["models"]] == sorted(MODEL_LIST)
    assert dict(page.context["models"])["gpt-4o"] is True  # already served
    assert fake_openai.requests[-1].headers["Authorization"] == f"Bearer {SECRET}"
    response = admin_client.post(url, {"model": ["gpt-4o-mini", "gpt-4o"]}, follow=True)
    openai_channel.refresh_from_db()
    assert openai_channel.models == ["gpt-4o", "gpt-4o-mini"]
    assert messages_of(response) == [f"1 model(s) added to {openai_channel}."]
    entry = AuditEntry.objects.get(object_type="channel", object_id=openai_channel.pk)
    assert entry.actor_name == "root" and entry.changes["models"] == [["gpt-4o"], ["gpt-4o", "gpt-4o-mini"]]


def test_a_failed_model_list_is_shown_without_the_key(admin_client, openai_channel, fake_openai):
    fake_openai.script.append(Behaviour(status=401, body={"error": {"message": f"bad key {SECRET}"}}))
    page = admin_client.get(f"/admin/channels_app/channel/{openai_channel.pk}/models/")
    assert page.context["problem"] == "The upstream did not list its models: 401 bad key ***"
    assert SECRET not in page.content.decode()


def test_a_provider_without_a_model_list_says_so(admin_client):
    channel = make_channel("https://x.example/v1/chat/completions", type="custom")
    page = admin_client.get(f"/admin/channels_app/channel/{channel.pk}/models/")
    assert page.context["problem"] == "Custom full URL channels have no model list to fetch."


def test_fetched_names_are_checked_by_the_channels_rules_when_added(admin_client, openai_channel):
    url = f"/admin/channels_app/channel/{openai_channel.pk}/models/"
    response = admin_client.post(url, {"model": ["  "]}, follow=True)
    openai_channel.refresh_from_db()
    assert openai_channel.models == ["gpt-4o"]
    [message] = messages_of(response)
    assert "must be a list of non-empty strings" in message
