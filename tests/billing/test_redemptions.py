"""Redemption codes: staff create batches (API or admin), a user redeems a code once, a used code is 409."""

import json
import re
import threading

import pytest
from django.db import connection
from django.test import Client

from billing.models import AccessToken, Log, Redemption, User, hash_key
from billing.payments import redemptions
from tests.support.factories import ALICE_QUOTA

pytestmark = pytest.mark.django_db(transaction=True)


def call(path: str, token: str, body: dict):
    return Client().post(
        path, data=json.dumps(body), content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )


@pytest.fixture
def alice_token(alice: User) -> str:
    return AccessToken.issue(alice)[1]


def quota_of(user: User) -> int:
    return User.objects.values_list("quota", flat=True).get(pk=user.pk)


def test_staff_create_a_batch_whose_codes_are_stored_only_hashed(access_token, root):
    response = call("/api/redemptions", access_token, {"name": "launch", "quota": 500_000, "count": 3})
    assert response.status_code == 201
    keys = response.json()["keys"]
    assert len(set(keys)) == 3 and all(len(key) == 32 for key in keys)
    stored = Redemption.objects.order_by("id")
    assert [row.code_hash for row in stored] == [hash_key(key) for key in keys]
    assert {(row.name, row.quota, row.status, row.created_by) for row in stored} == {
        ("launch", 500_000, "unused", root)
    }
    assert not any(key in json.dumps(list(stored.values()), default=str) for key in keys)


def test_users_may_not_create_codes(alice_token):
    response = call("/api/redemptions", alice_token, {"name": "free money", "quota": 10**9, "count": 1})
    assert response.status_code == 403 and not Redemption.objects.exists()


@pytest.mark.parametrize("body", [{"name": "x", "quota": 0, "count": 1}, {"name": "x", "quota": 1, "count": 1001}])
def test_a_batch_needs_positive_quota_and_a_sane_count(access_token, body):
    assert call("/api/redemptions", access_token, body).status_code == 422


def test_a_code_credits_once_then_answers_409(alice, alice_token, bob):
    [code] = redemptions.create_batch("gift", 250_000, 1)
    response = call("/api/redeem", alice_token, {"key": code})
    assert response.status_code == 200 and response.json() == {"quota": 250_000}
    assert quota_of(alice) == ALICE_QUOTA + 250_000
    [log] = Log.objects.filter(type=Log.Type.TOPUP, user_id=alice.pk)
    assert log.quota == 250_000 and "gift" in log.content and code not in log.content
    row = Redemption.objects.get()
    assert (row.status, row.used_by) == ("used", alice) and row.used_at
    again = call("/api/redeem", alice_token, {"key": code})
    assert again.status_code == 409 and "already been used" in again.json()["detail"]
    assert call("/api/redeem", AccessToken.issue(bob)[1], {"key": code}).status_code == 409
    assert quota_of(alice) == ALICE_QUOTA + 250_000 and quota_of(bob) == ALICE_QUOTA


def test_an_unknown_code_is_404(alice_token):
    assert call("/api/redeem", alice_token, {"key": "not-a-code"}).status_code == 404


def test_redeeming_needs_an_access_token(db):
    assert Client().post("/api/redeem", data={"key": "x"}, content_type="application/json").status_code == 401


@pytest.mark.backend
def test_concurrent_redemptions_of_one_code_credit_once(alice, bob):
    [code] = redemptions.create_batch("race", 100_000, 1)
    carol = User.objects.create_user("carol", quota=0)
    tokens = [AccessToken.issue(user)[1] for user in (alice, bob, carol, alice)]
    start = threading.Barrier(len(tokens))
    answers: list[int] = []

    def redeem(token: str) -> None:
        try:
            start.wait()
            answers.append(call("/api/redeem", token, {"key": code}).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == [200, 409, 409, 409]
    credited = sum(quota_of(user) for user in (alice, bob, carol)) - 2 * ALICE_QUOTA
    assert credited == 100_000
    assert Log.objects.filter(type=Log.Type.TOPUP).count() == 1


def test_staff_create_a_batch_in_admin_and_see_the_codes_once(root, alice):
    admin = Client()
    admin.force_login(root)
    assert admin.get("/admin/billing/redemption/add/").status_code == 200
    response = admin.post("/admin/billing/redemption/add/", {"name": "admin-batch", "quota": 70_000, "count": 2})
    assert response.status_code == 200
    codes = re.findall(r'<code class="new-secret">([^<]+)</code>', response.content.decode())
    assert len(codes) == 2 and {hash_key(code) for code in codes} == set(
        Redemption.objects.values_list("code_hash", flat=True)
    )
    listing = admin.get("/admin/billing/redemption/").content.decode()
    assert "admin-batch" in listing and not any(code in listing for code in codes)
    assert redemptions.redeem(alice, codes[0]) == 70_000


def test_staff_without_the_add_permission_cannot_create_codes_in_admin(transactional_db):
    clerk = User.objects.create_user("clerk", password="clerk-pass", is_staff=True)
    admin = Client()
    admin.force_login(clerk)
    response = admin.post("/admin/billing/redemption/add/", {"name": "sneaky", "quota": 1, "count": 1})
    assert response.status_code == 403 and not Redemption.objects.exists()


@pytest.mark.backend
def test_one_user_redeeming_many_codes_at_once_gets_every_one(alice):
    """The claim's foreign key check and the credit lock the same user row: taken in the wrong order, InnoDB
    deadlocked concurrent redemptions of one user (error 1213, a 500)."""
    codes = redemptions.create_batch("many", 1_000, 12)
    token = AccessToken.issue(alice)[1]
    start = threading.Barrier(len(codes))
    answers: list[int] = []

    def redeem(code: str) -> None:
        try:
            start.wait()
            answers.append(call("/api/redeem", token, {"key": code}).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem, args=(code,)) for code in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [200] * len(codes)
    assert quota_of(alice) == ALICE_QUOTA + 1_000 * len(codes)
