"""The audit trail: every state change of a channel, key, user, the prices or a user's quota writes exactly one
entry naming its actor and the old and new values, never a secret, in the transaction of the change."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from billing import audit, ledger, pricing
from billing.accounts import api_keys, users
from billing.models import AccessToken, ApiKey, AuditEntry, Log, TopUpOrder
from billing.payments import redemptions, topup
from billing.quota import QuotaExceeded
from channels_app import channels, healing
from channels_app.models import Channel
from channels_app.routing import channel_info
from tests.support.factories import ALICE_QUOTA, make_channel, make_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

PLAIN_KEY = "sk-upstream-plain-secret"
CHANNEL = {"name": "main", "type": "openai", "key": PLAIN_KEY, "models": ["gpt-4o"]}


def call(method: str, path: str, token: str, body: dict | None = None):
    data = json.dumps(body) if body is not None else None
    headers = {"Authorization": f"Bearer {token}"}
    return getattr(Client(), method)(path, data=data, content_type="application/json", headers=headers)


def only_entry(**where: object) -> AuditEntry:
    """The one entry there is (matching `where`); fails if there are more or none."""
    [entry] = AuditEntry.objects.filter(**where)
    return entry


def actor_of(entry: AuditEntry) -> tuple[int | None, str]:
    return entry.actor_id, entry.actor_name


@pytest.fixture
def channel() -> Channel:
    return make_channel("http://upstream.example", name="old-name", key=PLAIN_KEY)


def test_creating_a_channel_records_its_settings_and_only_that_a_key_was_set(access_token, root):
    created = call("post", "/api/channels", access_token, CHANNEL).json()
    entry = only_entry()
    assert (entry.object_type, entry.object_id, entry.action) == ("channel", created["id"], "create")
    assert actor_of(entry) == (root.pk, "root")
    assert entry.changes["name"] == [None, "main"] and entry.changes["models"] == [None, ["gpt-4o"]]
    assert entry.changes["key_encrypted"] == audit.CHANGED
    assert "plain-secret" not in json.dumps(entry.changes)


def test_changing_a_channel_records_old_and_new_values_and_a_changed_key_as_changed(access_token, root, channel):
    response = call("patch", f"/api/channels/{channel.pk}", access_token, {"name": "new-name", "key": "sk-rotated"})
    assert response.status_code == 200
    entry = only_entry()
    assert (entry.object_id, entry.action, actor_of(entry)) == (channel.pk, "update", (root.pk, "root"))
    assert entry.changes == {"name": ["old-name", "new-name"], "key_encrypted": "changed"}


def test_a_change_that_changes_nothing_records_nothing(access_token, channel):
    assert call("patch", f"/api/channels/{channel.pk}", access_token, {"name": "old-name"}).status_code == 200
    assert not AuditEntry.objects.exists()


def test_deleting_a_channel_records_what_it_was(access_token, channel):
    assert call("delete", f"/api/channels/{channel.pk}", access_token).status_code == 204
    entry = only_entry()
    assert (entry.object_id, entry.action) == (channel.pk, "delete")
    assert entry.changes["name"] == ["old-name", None] and entry.changes["key_encrypted"] == "changed"


def test_switching_channels_in_admin_records_one_entry_per_channel(admin_client, root, channel):
    other = make_channel("http://other.example", name="other")
    data = {"action": "disable", "_selected_action": [channel.pk, other.pk]}
    admin_client.post("/admin/channels_app/channel/", data)
    entries = AuditEntry.objects.order_by("object_id")
    assert [entry.object_id for entry in entries] == [channel.pk, other.pk]
    for entry in entries:
        assert actor_of(entry) == (root.pk, "root")
        assert entry.changes == {
            "status": ["enabled", "disabled"],
            "status_reason": ["", "disabled by root in admin"],
        }


def test_auto_disable_and_auto_enable_are_their_own_actors(channel):
    assert healing.auto_disable(channel_info(channel), "upstream status 401: bad key")
    assert healing.auto_enable(channel.pk, "channel test passed")
    disabled, enabled = AuditEntry.objects.order_by("id")
    assert actor_of(disabled) == (None, "auto-disable")
    assert disabled.changes == {
        "status": ["enabled", "auto_disabled"],
        "status_reason": ["", "upstream status 401: bad key"],
    }
    assert actor_of(enabled) == (None, "auto-enable")
    assert enabled.changes["status"] == ["auto_disabled", "enabled"]


def test_an_auto_disable_that_changes_nothing_records_nothing(channel):
    Channel.objects.filter(pk=channel.pk).update(auto_ban=False)
    assert not healing.auto_disable(channel_info(channel), "upstream status 401")
    assert not AuditEntry.objects.exists() and not Log.objects.exists()


def test_a_channel_changed_in_admin_names_the_signed_in_user(admin_client, root, channel):
    url = f"/admin/channels_app/channel/{channel.pk}/change/"
    response = admin_client.post(url, form_data(admin_client, url, priority=7))
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = only_entry()
    assert actor_of(entry) == (root.pk, "root") and entry.changes == {"priority": [0, 7]}


def test_a_command_is_the_manage_py_actor():
    call_command("channel_add", "--type", "openai", "--key", PLAIN_KEY, "--models", "gpt-4o", stdout=StringIO())
    entry = only_entry()
    assert (entry.object_type, entry.action, actor_of(entry)) == ("channel", "create", (None, "manage.py"))


def test_keys_record_create_quota_change_and_delete(alice):
    alice_token = AccessToken.issue(alice)[1]
    created = call("post", "/api/tokens", alice_token, {"name": "app", "remain_quota": 100}).json()
    assert call("patch", f"/api/tokens/{created['id']}", alice_token, {"remain_quota": 500}).status_code == 200
    assert call("delete", f"/api/tokens/{created['id']}", alice_token).status_code == 204
    create, update, delete = AuditEntry.objects.order_by("id")
    assert {actor_of(entry) for entry in (create, update, delete)} == {(alice.pk, "alice")}
    assert {entry.object_type for entry in (create, update, delete)} == {"key"}
    assert create.changes["remain_quota"] == [None, 100] and create.changes["key_hint"][1].startswith("sk-")
    assert created["key"] not in json.dumps(create.changes)
    assert update.changes == {"remain_quota": [100, 500]}
    assert delete.action == "delete" and delete.changes["remain_quota"] == [500, None]


def test_a_key_changed_in_the_console_names_its_owner(alice):
    token, _ = make_key(alice)
    console = Client()
    console.force_login(alice)
    console.post(f"/console/keys/{token.pk}/status", {"status": "disabled"})
    entry = only_entry()
    assert actor_of(entry) == (alice.pk, "alice") and entry.changes == {"status": ["enabled", "disabled"]}


def test_a_key_made_by_a_command_is_the_manage_py_actor(alice):
    call_command("token_create", "alice", "--quota", "1000", stdout=StringIO())
    entry = only_entry()
    assert (entry.object_type, actor_of(entry)) == ("key", (None, "manage.py"))


def test_users_record_create_update_and_delete(access_token, root):
    created = call("post", "/api/users", access_token, {"username": "carol", "password": "pw-123456"}).json()
    call("patch", f"/api/users/{created['id']}", access_token, {"group": "vip", "password": "another-pw"})
    call("delete", f"/api/users/{created['id']}", access_token)
    create, update, delete = AuditEntry.objects.order_by("id")
    assert {actor_of(entry) for entry in (create, update, delete)} == {(root.pk, "root")}
    assert create.changes["username"] == [None, "carol"] and create.changes["password"] == "changed"
    assert "pbkdf2" not in json.dumps(create.changes)
    assert update.changes == {"group": ["default", "vip"], "password": "changed"}
    assert (delete.action, delete.changes["username"]) == ("delete", ["carol", None])


def test_a_quota_adjustment_records_old_and_new_quota(access_token, root, alice):
    response = call("post", f"/api/users/{alice.pk}/quota", access_token, {"delta": -1000, "reason": "refund"})
    assert response.status_code == 200
    entry = only_entry()
    assert (entry.object_type, entry.object_id, entry.action) == ("user", alice.pk, "quota")
    assert actor_of(entry) == (root.pk, "root")
    assert entry.changes == {"quota": [ALICE_QUOTA, ALICE_QUOTA - 1000]}
    assert Log.objects.get(type=Log.Type.MANAGE).quota == -1000  # the user-visible ledger row stays


def test_a_refused_quota_removal_records_nothing(alice):
    with pytest.raises(QuotaExceeded):
        users.adjust_quota(alice, -(ALICE_QUOTA + 1))
    assert not AuditEntry.objects.exists()


def test_a_redemption_and_a_top_up_record_the_quota_they_credit(alice):
    [code] = redemptions.create_batch("gift", 250, 1)
    redemptions.redeem(alice, code)
    TopUpOrder.objects.create(
        out_trade_no="TU1", user=alice, amount_fen=100, quota=70, expires_at=timezone.now() + timedelta(minutes=30)
    )
    assert topup.mark_paid("TU1", "wx-1", 100, via="notification") == topup.Outcome.CREDITED
    assert topup.mark_paid("TU1", "wx-1", 100, via="notification") == topup.Outcome.ALREADY_PAID
    redeemed, paid = AuditEntry.objects.order_by("id")
    assert actor_of(redeemed) == (alice.pk, "alice")
    assert redeemed.changes == {"quota": [ALICE_QUOTA, ALICE_QUOTA + 250]}
    assert actor_of(paid) == (None, "wechat-pay")
    assert paid.changes == {"quota": [ALICE_QUOTA + 250, ALICE_QUOTA + 320]}


def test_prices_record_the_entries_that_changed(access_token, root):
    call("patch", "/api/pricing", access_token, {"model_ratio": {"gpt-4o": 2.0}})
    first = only_entry()
    assert (first.object_type, first.action, actor_of(first)) == ("prices", "create", (root.pk, "root"))
    put = {**pricing.current().as_dict(), "group_ratio": {"default": 1.0, "vip": 0.5}}
    call("put", "/api/pricing", access_token, put)
    second = only_entry(action="update")
    assert second.changes == {"group_ratio[svip]": [1.0, None], "group_ratio[vip]": [1.0, 0.5]}


def form_data(client: Client, url: str, **changes: object) -> dict:
    """What the admin's change form at `url` posts as it stands, with `changes`."""
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    return {**data, **changes}


def test_keys_users_and_prices_changed_in_admin_are_audited(admin_client, root, alice):
    token, _ = make_key(alice)
    delete = {"action": "delete_selected", "_selected_action": [token.pk], "post": "yes"}
    admin_client.post("/admin/billing/apikey/", delete)
    new_password = {"password1": "a-new-pass-42", "password2": "a-new-pass-42", "usable_password": "true"}
    admin_client.post(f"/admin/billing/user/{alice.pk}/password/", new_password)
    pricing.save({"quota_per_unit": 500_000})
    prices_url = "/admin/billing/pricetable/1/change/"
    response = admin_client.post(prices_url, form_data(admin_client, prices_url, quota_per_unit=1_000_000))
    assert response.status_code == 302
    deleted, password, _, prices = AuditEntry.objects.order_by("id")
    assert (deleted.object_type, deleted.object_id, deleted.action) == ("key", token.pk, "delete")
    assert (password.object_type, password.changes) == ("user", {"password": "changed"})
    assert (prices.object_type, prices.changes) == ("prices", {"quota_per_unit": [500_000, 1_000_000]})
    assert {actor_of(entry) for entry in (deleted, password, prices)} == {(root.pk, "root")}


def test_a_failed_audit_write_rolls_the_change_back(channel, alice, monkeypatch):
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("audit write failed")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(RuntimeError):
        channels.update_channel(channel, {"name": "never"})
    with pytest.raises(RuntimeError):
        users.adjust_quota(alice, 500)
    with pytest.raises(RuntimeError):
        api_keys.create_key(alice, name="never")
    channel.refresh_from_db()
    alice.refresh_from_db()
    assert channel.name == "old-name" and alice.quota == ALICE_QUOTA
    assert not ApiKey.objects.exists() and not Log.objects.exists()


def test_a_change_that_fails_after_its_entry_takes_the_entry_with_it(alice, monkeypatch):
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("ledger write failed")

    [code] = redemptions.create_batch("gift", 250, 1)
    monkeypatch.setattr(ledger, "write", broken)  # the redemption's last step, after its audit entry
    with pytest.raises(RuntimeError):
        redemptions.redeem(alice, code)
    alice.refresh_from_db()
    assert alice.quota == ALICE_QUOTA and not AuditEntry.objects.exists()


def test_a_change_that_fails_leaves_no_entry(monkeypatch):
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("channel write failed")

    monkeypatch.setattr(Channel, "save", broken)
    with pytest.raises(RuntimeError):
        channels.create_channel(**CHANNEL)
    assert not AuditEntry.objects.exists()


def test_the_audit_trail_is_read_only_in_admin_and_filters_by_type_and_actor(admin_client, access_token, channel):
    call("patch", f"/api/channels/{channel.pk}", access_token, {"name": "renamed"})
    healing.auto_disable(channel_info(Channel.objects.get(pk=channel.pk)), "upstream status 401")
    listing = admin_client.get("/admin/billing/auditentry/?object_type=channel&actor_name=auto-disable")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "auto-disable" in page and "&#x27;enabled&#x27; -&gt; &#x27;auto_disabled&#x27;" in page
    assert "renamed" not in page
    assert admin_client.get("/admin/billing/auditentry/add/").status_code == 403
    entry = AuditEntry.objects.first()
    assert admin_client.post(f"/admin/billing/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
