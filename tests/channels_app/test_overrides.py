"""A channel's param_override and header_override: what they do to a body, and that every way of saving a
channel (the model, admin, the management API, channel_add) refuses bad ones with a clear error. Header
values may be secrets: the audit trail records fingerprints of them."""

import json
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from billing.models import AuditEntry
from channels_app import channels, overrides
from channels_app.models import Channel
from tests.support.factories import CHANNEL_FORM

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "sk-upstream-secret"
HEADER_SECRET = "team-token-0123456789"


def test_it_sets_replaces_removes_and_creates_nested_fields_without_changing_the_original():
    body = {"model": "m", "user": "u", "thinking": {"type": "disabled", "budget_tokens": 1}}
    params = {"temperature": 0, "user": None, "thinking.type": "enabled", "a.b.c": [1], "gone.too": None}
    assert overrides.overridden_body(body, params) == {
        "model": "m",
        "temperature": 0,
        "thinking": {"type": "enabled", "budget_tokens": 1},
        "a": {"b": {"c": [1]}},
    }
    assert body == {"model": "m", "user": "u", "thinking": {"type": "disabled", "budget_tokens": 1}}


def test_a_path_through_a_value_that_is_no_object_replaces_it():
    assert overrides.overridden_body({"stop": "x"}, {"stop.when": "never"}) == {"stop": {"when": "never"}}


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"param_override": ["temperature"]}, "param_override must be a JSON object"),
        ({"param_override": {"a..b": 1}}, "param_override 'a..b'"),
        ({"header_override": "X-Team: a"}, "header_override must be a JSON object"),
        ({"header_override": {"Authorization": "Bearer mine"}}, "cannot set Authorization"),
        ({"header_override": {"X-API-Key": "k"}}, "cannot set X-API-Key"),
        ({"header_override": {"x-goog-api-key": "k"}}, "cannot set x-goog-api-key"),
        ({"header_override": {"Host": "evil.example"}}, "cannot set Host"),
        ({"header_override": {"X Team": "a"}}, "'X Team' is not an HTTP header name"),
        ({"header_override": {"X-Team": "a\r\nX-Evil: 1"}}, "X-Team: the value must be printable ASCII"),
        ({"header_override": {"X-Team": 5}}, "X-Team: the value must be printable ASCII"),
    ],
)
def test_the_model_refuses_bad_overrides_naming_the_problem(config, problem):
    with pytest.raises(ValidationError) as refused:
        channels.create_channel(key=SECRET, models=["gpt-4o"], config=config)
    assert any(problem in message for message in refused.value.message_dict["config"])
    assert not Channel.objects.exists()


def test_admin_refuses_a_forbidden_header(admin_client):
    config = json.dumps({"header_override": {"authorization": "Bearer x"}})
    response = admin_client.post(
        "/admin/channels_app/channel/add/", {**CHANNEL_FORM, "config": config, "new_key": SECRET}
    )
    assert response.status_code == 200
    assert "header_override cannot set authorization" in str(response.context["adminform"].form.errors["config"])
    assert not Channel.objects.exists()


def test_the_management_api_refuses_an_override_that_is_no_object(access_token):
    channel = {"name": "c", "type": "openai", "key": SECRET, "models": ["gpt-4o"], "config": {"param_override": 1}}
    response = Client().post(
        "/api/channels",
        json.dumps(channel),
        content_type="application/json",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    assert response.status_code == 422
    assert "param_override must be a JSON object" in response.content.decode()


def test_channel_add_takes_overrides_and_refuses_bad_ones():
    out = StringIO()
    arguments = ["--type", "deepseek", "--key", SECRET, "--models", "deepseek-chat"]
    call_command(
        "channel_add",
        *arguments,
        "--param-override",
        '{"top_p": 0.9}',
        "--header-override",
        '{"X-Team": "a"}',
        stdout=out,
    )
    assert Channel.objects.get().config == {"param_override": {"top_p": 0.9}, "header_override": {"X-Team": "a"}}
    with pytest.raises(CommandError, match="cannot set Authorization"):
        call_command("channel_add", *arguments, "--header-override", '{"Authorization": "x"}')
    with pytest.raises(CommandError, match="must be a JSON object"):
        call_command("channel_add", *arguments, "--param-override", "[1]")


def test_the_audit_trail_records_which_header_changed_never_its_value():
    channel = channels.create_channel(
        key=SECRET, models=["gpt-4o"], config={"header_override": {"X-Team": HEADER_SECRET}}
    )
    channels.update_channel(channel, {"config": {"header_override": {"X-Team": HEADER_SECRET + "-2"}}})
    entries = list(AuditEntry.objects.order_by("id").values_list("changes", flat=True))
    assert len(entries) == 2 and HEADER_SECRET not in json.dumps(entries)
    before, after = entries[1]["config[header_override]"]
    assert before["X-Team"].startswith("sha256:") and before != after
