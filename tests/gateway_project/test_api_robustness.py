"""What a client may send the management API (and admin) that the database cannot take, or that races
another request, is a 4xx naming the problem, never a 500: a lone surrogate in any text, null for a channel
field that has no null, a staff user locking themselves out, a row another request deleted meanwhile."""

import json
from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.models.signals import pre_delete, pre_save
from django.test import Client

from billing.models import AccessToken, ApiKey, User
from channels_app.models import Channel
from tests.support.factories import make_channel, make_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

SURROGATE = "x\ud800"  # json.dumps writes it as the escape "x\\ud800", as a client would


def call(method: str, path: str, token: str, body: dict | None = None):
    data = json.dumps(body) if body is not None else None
    headers = {"Authorization": f"Bearer {token}"}
    return getattr(Client(), method)(path, data=data, content_type="application/json", headers=headers)


@pytest.fixture
def world(root, alice) -> dict[str, int]:
    channel = make_channel("http://up.example")
    token, _ = make_key(alice)
    return {"channel": channel.pk, "token": token.pk, "alice": alice.pk}


SURROGATE_CASES = [
    ("post", "/api/channels", {"key": "sk-x", "models": ["m"], "name": SURROGATE}, "name"),
    ("post", "/api/channels", {"key": "sk-x", "models": ["m", SURROGATE]}, "models"),
    ("post", "/api/channels", {"key": "sk-x", "models": ["m"], "model_mapping": {SURROGATE: "m"}}, "model_mapping"),
    ("post", "/api/channels", {"key": "sk-x", "models": ["m"], "config": {"region": {"a": [SURROGATE]}}}, "config"),
    ("patch", "/api/channels/{channel}", {"base_url": f"http://{SURROGATE}"}, "base_url"),
    ("patch", "/api/channels/{channel}", {"groups": [SURROGATE]}, "groups"),
    ("post", "/api/users", {"username": "carol", "group": SURROGATE}, "group"),
    ("patch", "/api/users/{alice}", {"password": SURROGATE}, "password"),
    ("post", "/api/users/{alice}/quota", {"delta": 5, "reason": SURROGATE}, "reason"),
    ("post", "/api/tokens", {"name": SURROGATE}, "name"),
    ("patch", "/api/tokens/{token}", {"models": [SURROGATE]}, "models"),
    ("post", "/api/redemptions", {"name": SURROGATE, "quota": 5}, "name"),
    ("patch", "/api/pricing", {"model_ratio": {SURROGATE: 1.0}}, "model_ratio"),
    ("post", "/api/redeem", {"key": SURROGATE}, "key"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), SURROGATE_CASES)
def test_a_lone_surrogate_in_any_text_is_a_422_naming_the_field(world, access_token, method, path, body, field):
    response = call(method, path.format(**world), access_token, body)
    assert response.status_code == 422, response.content
    assert response.json()["detail"].startswith(f"{field}: ") and "surrogate" in response.json()["detail"]


def test_admin_refuses_a_lone_surrogate_in_a_json_field(world, root):
    admin = Client()
    admin.force_login(root)
    change = f"/admin/billing/apikey/{world['token']}/change/"
    form = {
        "user": world["alice"],
        "name": "app",
        "status": "enabled",
        "remain_quota": 5,
        "model_limits": '["\\ud800"]',
    }
    response = admin.post(change, form)
    assert response.status_code == 200 and "surrogate" in response.content.decode()
    assert ApiKey.objects.get(pk=world["token"]).model_limits is None


CHANNEL_FIELDS = ["name", "type", "key", "base_url", "models", "model_mapping", "status_code_mapping", "groups"]
CHANNEL_FIELDS += ["priority", "weight", "status", "auto_ban", "test_model", "config"]


@pytest.mark.parametrize("field", CHANNEL_FIELDS)
def test_null_for_a_channel_field_is_a_422_naming_it(world, access_token, field):
    response = call("patch", f"/api/channels/{world['channel']}", access_token, {field: None})
    assert response.status_code == 422, response.content
    assert response.json()["detail"].startswith(f"{field}: ")
    assert Channel.objects.get(pk=world["channel"]).base_url == "http://up.example"


@pytest.mark.parametrize("switch", ["is_active", "is_staff"])
def test_staff_cannot_lock_themselves_out_but_another_staff_user_can(root, access_token, switch):
    response = call("patch", f"/api/users/{root.pk}", access_token, {switch: False})
    assert response.status_code == 403 and "your own account" in response.json()["detail"]
    root.refresh_from_db()
    assert root.is_active and root.is_staff
    other = User.objects.create_user("ops", is_staff=True)
    assert call("patch", f"/api/users/{root.pk}", AccessToken.issue(other)[1], {switch: False}).status_code == 200


@pytest.mark.parametrize("switch", ["is_active", "is_staff"])
def test_admin_refuses_a_staff_user_unticking_their_own_box(root, switch):
    admin = Client()
    admin.force_login(root)
    change = f"/admin/billing/user/{root.pk}/change/"
    form = admin.get(change).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(groups=[], user_permissions=[], date_joined_0="2024-01-01", date_joined_1="00:00:00")
    del data[switch]  # an unticked box is not sent
    response = admin.post(change, data)
    assert response.status_code == 200 and "your own account" in response.content.decode()
    root.refresh_from_db()
    assert root.is_active


def delete_row(model, pk: int) -> None:
    """What a concurrent request's DELETE does, committed, without this request noticing."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)} WHERE id = %s", [pk])


@pytest.fixture
def deleted_meanwhile() -> Iterator:
    """Arm: the row (model, pk) disappears just before this request deletes or saves it."""
    armed = {}

    def vanish(sender, instance, **kwargs) -> None:
        if armed.get(sender) == instance.pk:
            del armed[sender]
            delete_row(sender, instance.pk)

    for signal in (pre_delete, pre_save):
        signal.connect(vanish, dispatch_uid="deleted-meanwhile")
    yield lambda model, pk: armed.__setitem__(model, pk)
    for signal in (pre_delete, pre_save):
        signal.disconnect(dispatch_uid="deleted-meanwhile")


@pytest.mark.parametrize(("model", "path"), [(Channel, "/api/channels/{channel}"), (ApiKey, "/api/tokens/{token}")])
def test_the_second_of_two_concurrent_deletes_answers_404(world, access_token, deleted_meanwhile, model, path):
    pk = world["channel" if model is Channel else "token"]
    deleted_meanwhile(model, pk)
    assert call("delete", path.format(**world), access_token).status_code == 404
    assert not model.objects.filter(pk=pk).exists()


@pytest.mark.parametrize(
    ("model", "path", "change"),
    [
        (Channel, "/api/channels/{channel}", {"priority": 5}),
        (ApiKey, "/api/tokens/{token}", {"name": "renamed"}),
        (User, "/api/users/{alice}", {"group": "vip"}),
    ],
)
def test_a_change_to_a_row_deleted_meanwhile_answers_404_and_does_not_bring_it_back(
    world, access_token, deleted_meanwhile, model, path, change
):
    pk = world[{Channel: "channel", ApiKey: "token", User: "alice"}[model]]
    if model is User:
        ApiKey.objects.filter(user_id=pk).delete()  # nothing may refer to the row the raw DELETE removes
    deleted_meanwhile(model, pk)
    assert call("patch", path.format(**world), access_token, change).status_code == 404
    assert not model.objects.filter(pk=pk).exists()
