"""A reservation whose request died with its process is released, once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import quota
from billing.models import ApiKey, Reservation, User
from tasks.jobs import periodic_jobs
from tests.support.factories import ALICE_QUOTA, make_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]


def test_stale_reservations_are_released_exactly_once(alice):
    token, _ = make_key(alice)
    quota.reserve("dead-request", token.pk, alice.pk, False, 1000)
    quota.reserve("live-request", token.pk, alice.pk, False, 500)
    Reservation.objects.filter(request_id="dead-request").update(created_at=timezone.now() - timedelta(hours=2))

    job = next(job for job in periodic_jobs() if job.name == "release_stale_reservations")
    assert job.run() == 1
    assert job.run() == 0
    assert User.objects.get(pk=alice.pk).quota == ALICE_QUOTA - 500
    assert ApiKey.objects.get(pk=token.pk).remain_quota == 5_000_000 - 500
    assert Reservation.objects.get(request_id="live-request").state == "held"


def test_reservation_settlement_and_release_are_idempotent(alice):
    token, _ = make_key(alice)
    quota.reserve("r1", token.pk, alice.pk, False, 1000)
    quota.reserve("r1", token.pk, alice.pk, False, 1000)  # a replay holds nothing more
    assert User.objects.get(pk=alice.pk).quota == ALICE_QUOTA - 1000
    charge = quota.Charge("r1", 300, "gpt-4o", 10, 5, None, "app", False, 12, "test")
    assert quota.settle(charge) is True
    assert quota.settle(charge) is False
    assert quota.release("r1") is False
    assert User.objects.get(pk=alice.pk).quota == ALICE_QUOTA - 300
    assert ApiKey.objects.get(pk=token.pk).remain_quota == 5_000_000 - 300


def test_unlimited_keys_hold_only_the_user(alice):
    token, _ = make_key(alice, unlimited_quota=True, remain_quota=0)
    quota.reserve("u1", token.pk, alice.pk, True, 1000)
    quota.settle(quota.Charge("u1", 400, "gpt-4o", 10, 5, None, "app", False, 12, "test"))
    token.refresh_from_db()
    assert (token.remain_quota, token.used_quota) == (0, 400)
    assert User.objects.get(pk=alice.pk).quota == ALICE_QUOTA - 400


def test_a_user_without_quota_cannot_reserve(alice):
    token, _ = make_key(alice)
    User.objects.filter(pk=alice.pk).update(quota=100)
    with pytest.raises(quota.QuotaExceeded):
        quota.reserve("r2", token.pk, alice.pk, False, 1000)
    assert Reservation.objects.count() == 0
    assert ApiKey.objects.get(pk=token.pk).remain_quota == 5_000_000
