"""Django admin: keys are shown once, channel keys are write-only and encrypted, quota moves are logged."""

import re

import pytest

from billing.models import AccessToken, ApiKey, Log, hash_key
from channels_app import routing
from channels_app.models import Channel
from tests.support.factories import ALICE_QUOTA, CHANNEL_FORM, make_channel

pytestmark = pytest.mark.django_db(transaction=True)

NEW_SECRET = re.compile(r'<code class="new-secret">([^<]+)</code>')


def test_adding_a_key_generates_it_and_shows_it_once(admin_client, alice):
    data = {"user": alice.pk, "name": "from-admin", "status": "enabled", "remain_quota": 100, "group": ""}
    response = admin_client.post("/admin/billing/apikey/add/", data)
    assert response.status_code == 200
    token = ApiKey.objects.get(name="from-admin")
    [key] = NEW_SECRET.findall(response.content.decode())
    assert token.key_hash == hash_key(key[3:]) and token.user == alice
    page = admin_client.get(f"/admin/billing/apikey/{token.pk}/change/").content.decode()
    assert key not in page and token.key_hash not in page and token.key_hint in page


def test_the_key_pages_old_admin_path_keeps_working_for_pages_and_posted_forms(admin_client, alice):
    page = admin_client.get("/admin/billing/token/?q=app")
    assert page.status_code == 308 and page["Location"] == "/admin/billing/apikey/?q=app"
    data = {"user": alice.pk, "name": "old-path", "status": "enabled", "remain_quota": 100, "group": ""}
    response = admin_client.post("/admin/billing/token/add/", data, follow=True)
    assert response.status_code == 200 and ApiKey.objects.filter(name="old-path").exists()


def test_adding_an_access_token_shows_it_once(admin_client, alice):
    response = admin_client.post("/admin/billing/accesstoken/add/", {"user": alice.pk, "name": "ops"})
    assert response.status_code == 200
    [plain] = NEW_SECRET.findall(response.content.decode())
    assert AccessToken.objects.get(name="ops").token_hash == hash_key(plain)


def test_a_channel_key_set_in_admin_is_encrypted_and_never_shown(admin_client):
    assert admin_client.post("/admin/channels_app/channel/add/", CHANNEL_FORM).status_code == 200  # key required
    response = admin_client.post("/admin/channels_app/channel/add/", {**CHANNEL_FORM, "new_key": "sk-admin-secret"})
    assert response.status_code == 302
    channel = Channel.objects.get(name="admin-made")
    assert channel.key == "sk-admin-secret" and "sk-admin-secret" not in channel.key_encrypted
    change_url = f"/admin/channels_app/channel/{channel.pk}/change/"
    assert "sk-admin-secret" not in admin_client.get(change_url).content.decode()
    admin_client.post(change_url, {**CHANNEL_FORM, "priority": 4})
    channel.refresh_from_db()
    assert (channel.priority, channel.key) == (4, "sk-admin-secret")


def test_the_disable_action_takes_channels_out_of_routing(admin_client):
    channel = make_channel("http://x.example")
    assert routing.get_index().candidates("default", "gpt-4o")
    data = {"action": "disable", "_selected_action": [channel.pk]}
    admin_client.post("/admin/channels_app/channel/", data)
    channel.refresh_from_db()
    assert channel.status == Channel.Status.DISABLED and "root" in channel.status_reason
    assert routing.get_index().candidates("default", "gpt-4o") == []


def test_a_quota_change_in_admin_is_logged(admin_client, alice):
    page = admin_client.get(f"/admin/billing/user/{alice.pk}/change/")
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(groups=[], user_permissions=[], quota_delta=-1000, quota_reason="chargeback")
    data.update(date_joined_0="2024-01-01", date_joined_1="00:00:00")
    response = admin_client.post(f"/admin/billing/user/{alice.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    alice.refresh_from_db()
    assert alice.quota == ALICE_QUOTA - 1000
    log = Log.objects.get(type=Log.Type.MANAGE)
    assert log.quota == -1000 and "chargeback" in log.content


def test_the_ledger_is_read_only_in_admin(admin_client):
    assert admin_client.get("/admin/billing/log/add/").status_code == 403
    assert admin_client.get("/admin/billing/log/").status_code == 200
