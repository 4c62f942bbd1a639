"""A channel of several keys: how keys are entered and stored, switched and deleted one by one through the
management API, the admin and channel_add, and the migration that brought ChannelKey."""

import json

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from billing.models import AuditEntry
from channels_app import channels, crypto, routing
from channels_app.models import Channel, ChannelKey
from tests.support.factories import CHANNEL_FORM, make_channel

pytestmark = pytest.mark.django_db(transaction=True)

KEYS = ["sk-first-key-0001", "sk-second-key-0002", "sk-third-key-0003"]


def api(access_token: str, method: str, path: str, body: dict | None = None):
    client = Client(headers={"Authorization": f"Bearer {access_token}"})
    if body is None:
        return getattr(client, method)(f"/api/channels{path}")
    return getattr(client, method)(f"/api/channels{path}", json.dumps(body), content_type="application/json")


@pytest.mark.backend
@pytest.mark.parametrize("entered", ["\n".join(KEYS) + "\n\n", json.dumps(KEYS), "\n".join(KEYS + KEYS[:1])])
def test_keys_entered_one_per_line_or_as_a_json_list_are_stored_encrypted_each(entered):
    channel = channels.create_channel(key=entered, models=["gpt-4o"], key_mode="polling")
    rows = list(ChannelKey.objects.filter(channel=channel))
    assert [(row.position, row.key, row.status) for row in rows] == [(n, key, "enabled") for n, key in enumerate(KEYS)]
    assert all(key not in row.key_encrypted for row in rows for key in KEYS)
    assert Channel.objects.get(pk=channel.pk).key == KEYS[0]  # the first key: what the balance query uses
    info = routing.get_index().by_id[channel.pk]
    assert info.keys == tuple(enumerate(KEYS)) and info.key_mode == "polling" and info.key_position == 0


@pytest.mark.backend
def test_a_single_key_channel_stays_as_it_was():
    channel = channels.create_channel(key="sk-only-one-key", models=["gpt-4o"])
    assert not ChannelKey.objects.exists()
    info = routing.get_index().by_id[channel.pk]
    assert (info.key, info.keys, info.key_position) == ("sk-only-one-key", (), None)
    channels.update_channel(channel, {"key": "\n".join(KEYS)})
    assert ChannelKey.objects.filter(channel=channel).count() == 3
    channels.update_channel(channel, {"key": "sk-back-to-one"})
    assert not ChannelKey.objects.exists() and Channel.objects.get(pk=channel.pk).key == "sk-back-to-one"


def test_a_bad_key_among_many_is_named_by_its_place():
    with pytest.raises(Exception, match="key 2 of 3: must be printable ASCII"):
        channels.create_channel(key=f"{KEYS[0]}\nsk-\x01bad\n{KEYS[2]}", models=["gpt-4o"])
    assert not Channel.objects.exists()


@pytest.mark.backend
def test_the_api_shows_masked_keys_and_adds_switches_and_deletes_them(access_token):
    created = api(access_token, "post", "", {"key": KEYS[0], "models": ["gpt-4o"]})
    channel_id = created.json()["id"]
    assert [key["key_hint"] for key in created.json()["keys"]] == ["sk-...0001"]

    added = api(access_token, "post", f"/{channel_id}/keys", {"keys": KEYS[1:] + [KEYS[0]]})
    assert added.status_code == 201, added.content
    assert [(key["position"], key["key_hint"]) for key in added.json()] == [
        (0, "sk-...0001"),
        (1, "sk-...0002"),
        (2, "sk-...0003"),
    ]
    assert api(access_token, "patch", f"/{channel_id}/keys/1", {"status": "disabled"}).json()["status"] == "disabled"
    assert routing.get_index().by_id[channel_id].keys == ((0, KEYS[0]), (2, KEYS[2]))

    assert api(access_token, "delete", f"/{channel_id}/keys/0").status_code == 204
    assert Channel.objects.get(pk=channel_id).key == KEYS[1]  # the first key left
    refused = api(access_token, "patch", f"/{channel_id}/keys/2", {"status": "disabled"})
    assert refused.status_code == 422 and "last enabled key" in refused.json()["detail"]
    assert api(access_token, "delete", f"/{channel_id}/keys/1").status_code == 204
    last = api(access_token, "delete", f"/{channel_id}/keys/2")
    assert last.status_code == 422 and "last key" in last.json()["detail"]
    assert api(access_token, "delete", f"/{channel_id}/keys/7").status_code == 404

    listed = api(access_token, "get", f"/{channel_id}/keys").json()
    assert [(key["position"], key["status"]) for key in listed] == [(2, "enabled")]
    changes = [entry.changes for entry in AuditEntry.objects.filter(object_type=AuditEntry.Kind.CHANNEL)]
    assert {"keys[#1]": ["sk-...0002 enabled", "sk-...0002 disabled"]} in changes
    assert all(key not in json.dumps(changes) for key in KEYS)


def test_enabling_a_key_of_an_auto_disabled_channel_puts_the_channel_back(access_token):
    channel = channels.create_channel(key="\n".join(KEYS[:2]), models=["gpt-4o"])
    Channel.objects.filter(pk=channel.pk).update(status="auto_disabled", status_reason="every key is disabled")
    ChannelKey.objects.filter(channel=channel).update(status="auto_disabled")
    assert api(access_token, "patch", f"/{channel.pk}/keys/1", {"status": "enabled"}).status_code == 200
    assert Channel.objects.get(pk=channel.pk).status == "enabled"
    assert routing.get_index().by_id[channel.pk].keys == ((1, KEYS[1]),)


def test_switching_a_channel_on_gives_its_auto_disabled_keys_another_chance():
    channel = channels.create_channel(key="\n".join(KEYS), models=["gpt-4o"])
    ChannelKey.objects.filter(channel=channel, position=0).update(status="disabled")
    ChannelKey.objects.filter(channel=channel, position__gt=0).update(status="auto_disabled")
    channels.set_status([channel.pk], "enabled")
    assert list(ChannelKey.objects.values_list("status", flat=True)) == ["disabled", "enabled", "enabled"]


def test_admin_shows_each_key_masked_with_its_status_and_switches_one(admin_client):
    response = admin_client.post(
        "/admin/channels_app/channel/add/", {**CHANNEL_FORM, "new_key": "\n".join(KEYS), "key_mode": "polling"}
    )
    assert response.status_code == 302
    channel = Channel.objects.get(name="admin-made")
    assert channel.key_mode == "polling"
    ChannelKey.objects.filter(position=2).update(status="auto_disabled", status_reason="upstream status 401: bad")
    page = admin_client.get(f"/admin/channels_app/channel/{channel.pk}/change/").content.decode()
    assert all(crypto.mask(key) in page and key not in page for key in KEYS)
    assert "Auto Disabled" in page and "upstream status 401: bad" in page
    assert f"/admin/channels_app/channel/{channel.pk}/keys/2/enable/" in page

    switched = admin_client.post(f"/admin/channels_app/channel/{channel.pk}/keys/2/enable/")
    assert switched.status_code == 302
    assert ChannelKey.objects.get(position=2).status == "enabled"
    admin_client.post(f"/admin/channels_app/channel/{channel.pk}/keys/0/delete/")
    assert list(ChannelKey.objects.values_list("position", flat=True)) == [1, 2]


def test_admin_adds_keys_to_a_channel_of_one(admin_client):
    channel = make_channel("http://up.example", key=KEYS[0])
    form = {**CHANNEL_FORM, "name": "fake", "base_url": "http://up.example", "add_keys": "\n".join(KEYS[1:])}
    response = admin_client.post(f"/admin/channels_app/channel/{channel.pk}/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert [row.key for row in ChannelKey.objects.filter(channel=channel)] == KEYS


def test_channel_add_takes_several_keys_and_a_mode():
    call_command(
        "channel_add", "--type", "openai", "--key", json.dumps(KEYS), "--models", "gpt-4o", "--key-mode", "polling"
    )
    channel = Channel.objects.get()
    assert channel.key_mode == "polling" and ChannelKey.objects.filter(channel=channel).count() == 3


@pytest.mark.backend
def test_the_migration_keeps_every_channel_and_its_key_and_goes_back():
    executor = MigrationExecutor(connection)
    before, after = [("channels_app", "0002_channel_type_without_choices")], [("channels_app", "0003_channel_keys")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("channels_app", "Channel")
    kept = old.objects.create(name="old", key_encrypted=crypto.encrypt("sk-from-before"), models=["gpt-4o"])
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    channel = Channel.objects.get(pk=kept.pk)
    assert channel.key == "sk-from-before" and channel.key_mode == "random"
    assert [row.key for row in channel.key_list()] == ["sk-from-before"]
    assert routing.get_index().by_id[channel.pk].key == "sk-from-before"
    MigrationExecutor(connection).migrate(before)
    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
