"""No one reaches another user's data through any endpoint; secrets never sit in the database in clear."""

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from billing import ledger
from billing.models import AccessToken, Log, TopUpOrder
from tasks.models import Task
from tests.support.factories import make_channel, make_key
from tests.support.fakes.openai_upstream import Behaviour

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(alice, bob, fake_openai):
    """bob owns a key, a log, a task and an order; alice has her own access token."""
    bob_token, _ = make_key(bob, name="bob's")
    channel = make_channel(fake_openai.url)
    log = ledger.write(Log(type="consume", user_id=bob.pk, token_id=bob_token.pk, model="gpt-4o", quota=5))
    task = Task.objects.create(
        user=bob,
        token=bob_token,
        channel=channel,
        platform="midjourney",
        action="IMAGINE",
        public_id="1700000000000001",
        upstream_id="u-1",
        quota=1,
    )
    order = TopUpOrder.objects.create(
        out_trade_no="TUbob0001",
        user=bob,
        amount_fen=100,
        quota=68493,
        expires_at=timezone.now() + timedelta(minutes=30),
    )
    _, alice_access = AccessToken.issue(alice)
    return {
        "alice": Client(headers={"Authorization": f"Bearer {alice_access}"}),
        "bob": bob,
        "key": bob_token,
        "log": log,
        "task": task,
        "order": order,
    }


def test_alice_cannot_read_or_change_anything_of_bob(world):
    alice, bob = world["alice"], world["bob"]
    key = world["key"].pk
    assert alice.get(f"/api/tokens/{key}").status_code == 404
    assert alice.patch(f"/api/tokens/{key}", {"status": "disabled"}, content_type="application/json").status_code == 404
    assert alice.delete(f"/api/tokens/{key}").status_code == 404
    assert [t["id"] for t in alice.get("/api/tokens").json()["items"]] == []
    assert alice.get("/api/logs").json()["count"] == 0
    assert alice.get(f"/api/logs?user_id={bob.pk}").status_code == 403
    assert alice.get(f"/api/logs/stats?user_id={bob.pk}").status_code == 403
    assert alice.get("/api/tasks").json()["count"] == 0
    assert alice.get(f"/api/topup/wechat/{world['order'].out_trade_no}").status_code == 404
    for staff_only in ("/api/users", f"/api/users/{bob.pk}", "/api/channels"):
        assert alice.get(staff_only).status_code == 403
    assert (
        alice.post(
            f"/api/users/{bob.pk}/quota", {"delta": 10**9, "reason": "mine now"}, content_type="application/json"
        ).status_code
        == 403
    )
    assert alice.put("/api/pricing", {}, content_type="application/json").status_code == 403
    assert (
        alice.post(
            "/api/redemptions", {"name": "free", "quota": 10**9, "count": 1}, content_type="application/json"
        ).status_code
        == 403
    )


def test_secrets_are_not_stored_in_clear(alice, fake_openai):
    _, plain_key = make_key(alice)
    make_channel(fake_openai.url, key="sk-upstream-very-secret-123")
    _, access = AccessToken.issue(alice)
    dump = database_dump()
    assert plain_key[3:] not in dump  # the 48 characters after sk-
    assert "sk-upstream-very-secret-123" not in dump
    assert access not in dump


def database_dump() -> str:
    """Every text value of every table, as a backup would hold them."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(str(value) for row in cursor.fetchall() for value in row)
    return "\n".join(chunks)


# What OpenAI answers; after a 401 the gateway disables the channel and writes a manage log.
UPSTREAM_ERROR = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "bad"}}


@pytest.mark.parametrize("status", [200, 401, 500])
def test_no_key_or_channel_secret_reaches_a_log_line_or_an_answer(alice, fake_openai, caplog, status):
    """Through a success, a dead credential (auto-disable, manage log) and a failure: every log record the
    gateway writes, every answer and every log row stay free of the client's key and the channel's key."""
    _, plain_key = make_key(alice)
    make_channel(fake_openai.url, key="sk-upstream-very-secret-123", auto_ban=True)
    fake_openai.script.append(Behaviour(status=status, body=None if status == 200 else UPSTREAM_ERROR))
    caplog.set_level(logging.DEBUG)
    answer = Client().post(
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {plain_key}"},
    )
    assert answer.status_code == status
    written = caplog.text + answer.content.decode() + str(list(Log.objects.values()))
    for secret in (plain_key[3:], "sk-upstream-very-secret-123"):
        assert secret not in written
