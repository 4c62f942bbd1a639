"""The management API of the README's "Management API" section: auth, channels, users, keys, logs and prices."""

import json
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from billing import ledger, pricing
from billing.models import AccessToken, ApiKey, Log, User, hash_key
from channels_app.models import Channel
from tests.support.factories import ALICE_QUOTA, make_channel, make_key
from tests.support.fakes.openai_upstream import Behaviour

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

CHANNEL = {"name": "main", "type": "openai", "key": "sk-upstream-plain-secret", "models": ["gpt-4o", "gpt-4-gizmo-*"]}


def call(method: str, path: str, token: str | None = None, body: dict | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body) if body is not None else None
    return getattr(Client(), method)(path, data=data, content_type="application/json", headers=headers)


@pytest.fixture
def alice_token(alice: User) -> str:
    return AccessToken.issue(alice)[1]


def test_status_needs_no_token_and_describes_the_setup(db):
    response = call("get", "/api/status")
    assert response.status_code == 200
    assert response.json() == {
        "version": settings.VERSION,
        "database": settings.DATABASE_VENDOR,
        "cache": "redis" if settings.REDIS_CONN_STRING else "memory",
        "cache_ok": True,
        "task_runner": "celery" if settings.CELERY_BROKER_URL else "embedded",
    }


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_it_answers_401_without_a_valid_access_token(root, token):
    response = call("get", "/api/me", token)
    assert response.status_code == 401
    assert "access token" in response.json()["detail"]


def test_it_answers_401_for_an_inactive_users_token(alice, alice_token):
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert call("get", "/api/me", alice_token).status_code == 401


def test_it_publishes_the_openapi_document_and_docs(db):
    document = call("get", "/api/openapi.json").json()
    assert {"/api/channels", "/api/tokens", "/api/logs/stats", "/api/pricing"} <= set(document["paths"])
    assert call("get", "/api/docs").status_code == 200


def test_it_creates_a_channel_whose_key_is_encrypted_and_never_returned(access_token):
    response = call("post", "/api/channels", access_token, CHANNEL)
    assert response.status_code == 201
    body = response.json()
    assert "key" not in body and "sk-upstream-plain-secret" not in response.content.decode()
    assert body["key_hint"] == "sk-...cret"
    assert (body["groups"], body["priority"], body["weight"], body["status"]) == (["default"], 0, 1, "enabled")
    channel = Channel.objects.get(pk=body["id"])
    assert channel.key_encrypted != CHANNEL["key"] and CHANNEL["key"] not in channel.key_encrypted
    assert channel.key == CHANNEL["key"]
    read = call("get", f"/api/channels/{body['id']}", access_token)
    assert read.json()["key_hint"] == "sk-...cret" and "key" not in read.json()


def test_it_patches_a_channel_and_replaces_its_key(access_token):
    channel = make_channel("http://old.example", name="old")
    changes = {"name": "new", "weight": 0, "model_mapping": {"gpt-4o": "gpt-4o-2024-11-20"}, "key": "sk-rotated-key"}
    response = call("patch", f"/api/channels/{channel.pk}", access_token, changes)
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["weight"]) == ("new", 0)
    channel.refresh_from_db()
    assert channel.key == "sk-rotated-key" and channel.base_url == "http://old.example"
    assert channel.model_mapping == {"gpt-4o": "gpt-4o-2024-11-20"}


def test_it_deletes_a_channel(access_token):
    channel = make_channel("http://x.example")
    assert call("delete", f"/api/channels/{channel.pk}", access_token).status_code == 204
    assert not Channel.objects.filter(pk=channel.pk).exists()
    assert call("get", f"/api/channels/{channel.pk}", access_token).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status_code_mapping": {"400": "teapot"}}, "status_code_mapping"),
        ({"status_code_mapping": ["400"]}, "status_code_mapping"),
        ({"model_mapping": {"gpt-4o": 5}}, "model_mapping"),
        ({"models": []}, "models"),
        ({"type": "carrier-pigeon"}, "type"),
        ({"weight": -1}, "weight"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_channel_fields_are_422_naming_the_field(access_token, change, field):
    response = call("post", "/api/channels", access_token, {**CHANNEL, **change})
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"{field}:")
    assert not Channel.objects.exists()


def test_invalid_status_code_mapping_in_a_patch_is_422_and_changes_nothing(access_token):
    channel = make_channel("http://x.example", status_code_mapping={"429": "503"})
    response = call("patch", f"/api/channels/{channel.pk}", access_token, {"status_code_mapping": {"400": "abc"}})
    assert response.status_code == 422
    assert "status_code_mapping" in response.json()["detail"]
    channel.refresh_from_db()
    assert channel.status_code_mapping == {"429": "503"}


def test_channel_list_is_paginated(access_token):
    for priority in range(3):
        make_channel("http://x.example", name=f"c{priority}", priority=priority)
    page = call("get", "/api/channels?limit=2&offset=1", access_token).json()
    assert page["count"] == 3
    assert [item["name"] for item in page["items"]] == ["c1", "c0"]


def test_channel_test_sends_a_tiny_request_and_records_the_response_time(access_token, fake_openai):
    channel = make_channel(fake_openai.url, models=["gpt-4o-mini", "gpt-4o"], key="sk-fake-upstream-key")
    fake_openai.script.append(Behaviour(delay=0.05))
    response = call("post", f"/api/channels/{channel.pk}/test", access_token)
    assert response.status_code == 200
    result = response.json()
    assert result["success"] is True and result["time_ms"] >= 50
    sent = fake_openai.requests[0]
    assert sent.body == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    assert sent.headers["Authorization"] == "Bearer sk-fake-upstream-key"
    channel.refresh_from_db()
    assert channel.response_time_ms == result["time_ms"]


def test_a_failed_channel_test_reports_the_upstream_error_without_the_key(access_token, fake_openai):
    channel = make_channel(fake_openai.url, key="sk-leaky-key-1234", response_time_ms=7)
    error = {"error": {"message": "Incorrect API key provided: sk-leaky-key-1234", "type": "invalid_request_error"}}
    fake_openai.script.append(Behaviour(status=401, body=error))
    result = call("post", f"/api/channels/{channel.pk}/test", access_token).json()
    assert result["success"] is False
    assert "401" in result["message"] and "Incorrect API key" in result["message"]
    assert "sk-leaky-key-1234" not in result["message"]
    channel.refresh_from_db()
    assert channel.response_time_ms == 7


def test_it_creates_reads_updates_and_deletes_users(access_token):
    created = call("post", "/api/users", access_token, {"username": "carol", "password": "pw-1", "group": "vip"})
    assert created.status_code == 201
    body = created.json()
    assert "password" not in body
    assert (body["group"], body["quota"], body["is_staff"]) == ("vip", 0, False)
    carol = User.objects.get(username="carol")
    assert carol.check_password("pw-1")
    changed = call("patch", f"/api/users/{carol.pk}", access_token, {"password": "pw-2", "is_active": False})
    assert changed.json()["is_active"] is False
    carol.refresh_from_db()
    assert carol.check_password("pw-2")
    assert call("get", f"/api/users/{carol.pk}", access_token).json()["username"] == "carol"
    assert call("get", "/api/users", access_token).json()["count"] == 2
    assert call("delete", f"/api/users/{carol.pk}", access_token).status_code == 204
    assert call("get", f"/api/users/{carol.pk}", access_token).status_code == 404


def test_a_taken_username_is_422(access_token, alice):
    response = call("post", "/api/users", access_token, {"username": "alice"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("username:")


def test_quota_can_only_move_through_the_quota_endpoint(access_token, alice):
    response = call("patch", f"/api/users/{alice.pk}", access_token, {"quota": 1})
    assert response.status_code == 422
    assert "quota" in response.json()["detail"]


def test_a_quota_delta_moves_quota_and_writes_a_manage_log(access_token, root, alice):
    response = call("post", f"/api/users/{alice.pk}/quota", access_token, {"delta": -2500, "reason": "refund x"})
    assert response.status_code == 200
    assert response.json()["quota"] == ALICE_QUOTA - 2500
    alice.refresh_from_db()
    assert alice.quota == ALICE_QUOTA - 2500
    log = Log.objects.get(type=Log.Type.MANAGE, user_id=alice.pk)
    assert log.quota == -2500
    assert "root" in log.content and "refund x" in log.content and "-2500" in log.content


def test_removing_more_quota_than_is_left_is_409_and_logs_nothing(access_token, alice):
    response = call("post", f"/api/users/{alice.pk}/quota", access_token, {"delta": -ALICE_QUOTA - 1})
    assert response.status_code == 409
    alice.refresh_from_db()
    assert alice.quota == ALICE_QUOTA
    assert not Log.objects.exists()


def test_me_is_the_callers_own_profile(alice, alice_token):
    body = call("get", "/api/me", alice_token).json()
    assert (body["id"], body["username"], body["quota"]) == (alice.pk, "alice", ALICE_QUOTA)


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/channels"), ("post", "/api/channels"), ("get", "/api/users"), ("put", "/api/pricing")],
)
def test_non_staff_users_are_403_on_staff_resources(alice_token, method, path):
    response = call(method, path, alice_token, {} if method != "get" else None)
    assert response.status_code == 403
    assert response.json()["detail"]


def test_a_key_is_returned_in_full_only_when_created(alice, alice_token):
    response = call("post", "/api/tokens", alice_token, {"name": "app", "remain_quota": 1000, "models": ["gpt-4o"]})
    assert response.status_code == 201
    body = response.json()
    key = body["key"]
    assert key.startswith("sk-") and len(key) == 3 + 48
    token = ApiKey.objects.get(pk=body["id"])
    assert token.key_hash == hash_key(key[3:]) and token.user == alice
    assert token.model_limits == ["gpt-4o"]
    assert body["key_hint"] == f"sk-{key[3:7]}...{key[-4:]}"
    for read in (call("get", f"/api/tokens/{token.pk}", alice_token), call("get", "/api/tokens", alice_token)):
        assert key not in read.content.decode() and "key" not in read.json().get("items", [read.json()])[0]


def test_non_staff_users_see_and_change_only_their_own_keys(alice, bob, alice_token):
    own, _ = make_key(alice, name="mine")
    bobs, _ = make_key(bob, name="bobs")
    listed = call("get", "/api/tokens", alice_token).json()
    assert [item["id"] for item in listed["items"]] == [own.pk]
    for method in ("get", "patch", "delete"):
        assert call(method, f"/api/tokens/{bobs.pk}", alice_token, {} if method == "patch" else None).status_code == 404
    assert ApiKey.objects.filter(pk=bobs.pk).exists()
    assert call("post", "/api/tokens", alice_token, {"user_id": bob.pk}).status_code == 403


def test_non_staff_users_may_not_move_a_key_into_another_group(alice, alice_token):
    response = call("post", "/api/tokens", alice_token, {"group": "vip"})
    assert response.status_code == 403
    assert call("post", "/api/tokens", alice_token, {"group": "default"}).status_code == 201


def test_staff_create_keys_for_other_users_and_update_them(access_token, alice):
    created = call(
        "post", "/api/tokens", access_token, {"user_id": alice.pk, "unlimited_quota": True, "group": "default"}
    )
    assert created.status_code == 201 and created.json()["user_id"] == alice.pk
    token_id = created.json()["id"]
    expiry = (timezone.now() + timedelta(days=1)).isoformat()
    changes = {"status": "disabled", "models": None, "allow_ips": ["10.0.0.0/8"], "expires_at": expiry}
    patched = call("patch", f"/api/tokens/{token_id}", access_token, changes).json()
    assert (patched["status"], patched["models"], patched["allow_ips"]) == ("disabled", None, ["10.0.0.0/8"])
    assert ApiKey.objects.get(pk=token_id).expires_at is not None
    assert call("delete", f"/api/tokens/{token_id}", access_token).status_code == 204


def test_an_invalid_allowed_ip_is_422(alice_token):
    response = call("post", "/api/tokens", alice_token, {"allow_ips": ["10.0.0.300"]})
    assert response.status_code == 422 and response.json()["detail"].startswith("allow_ips:")


def consume(user: User, model: str, quota: int, **fields) -> Log:
    request_id = uuid.uuid4().hex
    return ledger.write(
        Log(type=Log.Type.CONSUME, user_id=user.pk, model=model, quota=quota, request_id=request_id, **fields)
    )


def test_logs_filter_by_model_type_key_channel_and_time(access_token, alice, bob):
    old = consume(alice, "gpt-4o", 10, created_at=timezone.now() - timedelta(days=2))
    recent = consume(alice, "gpt-4o", 20, token_id=7, channel_id=3)
    consume(bob, "claude-3-haiku-20240307", 30)
    Log.objects.create(type=Log.Type.MANAGE, user_id=alice.pk, quota=500)

    def ids(query: str) -> list[int]:
        return [item["id"] for item in call("get", f"/api/logs?{query}", access_token).json()["items"]]

    assert ids(f"model=gpt-4o&user_id={alice.pk}") == [recent.pk, old.pk]
    assert ids("token_id=7") == ids("channel_id=3") == [recent.pk]
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"model=gpt-4o&since={since}") == [recent.pk]
    assert ids(f"model=gpt-4o&until={since}") == [old.pk]
    assert len(ids("type=manage")) == 1
    assert call("get", "/api/logs?type=bogus", access_token).status_code == 422


def test_log_stats_total_consumption_for_the_filters(access_token, alice, bob):
    consume(alice, "gpt-4o", 10, prompt_tokens=1, completion_tokens=2)
    consume(alice, "gpt-4o", 20, prompt_tokens=3, completion_tokens=4, cache_read_tokens=2, reasoning_tokens=1)
    consume(bob, "gpt-4o", 40)
    Log.objects.create(type=Log.Type.MANAGE, user_id=alice.pk, quota=500)
    stats = call("get", f"/api/logs/stats?user_id={alice.pk}", access_token).json()
    assert stats == {
        "quota": 30,
        "requests": 2,
        "prompt_tokens": 4,
        "completion_tokens": 6,
        "cache_read_tokens": 2,
        "cache_write_5m_tokens": 0,
        "cache_write_1h_tokens": 0,
        "reasoning_tokens": 1,
    }
    manage = call("get", "/api/logs/stats?type=manage", access_token).json()
    assert (manage["quota"], manage["requests"]) == (500, 1)


def test_non_staff_users_read_only_their_own_logs(alice, bob, alice_token):
    mine = consume(alice, "gpt-4o", 10)
    consume(bob, "gpt-4o", 40)
    assert [item["id"] for item in call("get", "/api/logs", alice_token).json()["items"]] == [mine.pk]
    assert call("get", "/api/logs/stats", alice_token).json()["quota"] == 10
    assert call("get", f"/api/logs?user_id={bob.pk}", alice_token).status_code == 403


def test_prices_are_readable_by_anyone_signed_in(alice_token):
    assert call("get", "/api/pricing", alice_token).json() == pricing.defaults()


def test_put_replaces_prices_and_patch_merges_into_them(access_token):
    table = {"quota_per_unit": 1000, "model_ratio": {"m": 2.0}, "completion_ratio": {}, "model_price": {}}
    replaced = call("put", "/api/pricing", access_token, {**table, "group_ratio": {"default": 1.0}})
    assert replaced.status_code == 200
    assert replaced.json()["model_ratio"] == {"m": 2.0}
    merged = call("patch", "/api/pricing", access_token, {"model_ratio": {"n": 0.5}, "group_ratio": {"vip": 0.8}})
    assert merged.json()["model_ratio"] == {"m": 2.0, "n": 0.5}
    assert merged.json()["group_ratio"] == {"default": 1.0, "vip": 0.8}
    assert merged.json()["quota_per_unit"] == 1000
    pricing.PRICES.forget()
    assert pricing.current().quote("n", "vip").model_ratio == 0.5


@pytest.mark.parametrize(
    "body", [{"model_ratio": {"m": -1}}, {"quota_per_unit": 0}, {"model_ratio": "cheap"}, {"ratios": {}}]
)
def test_invalid_prices_are_422(access_token, body):
    assert call("patch", "/api/pricing", access_token, body).status_code == 422


def test_put_needs_the_whole_price_table(access_token):
    response = call("put", "/api/pricing", access_token, {"model_ratio": {"m": 1}})
    assert response.status_code == 422 and "quota_per_unit" in response.json()["detail"]
