"""Reservations and settlements of concurrent requests share one transaction, and each request still gets
exactly what it would have got alone."""

import asyncio

import pytest
from django.conf import settings

from billing import quota
from billing.models import ApiKey, DailyUsage, Log, Reservation, User
from gateway_project import db
from gateway_project.db import GroupCommit
from tests.support.factories import ALICE_QUOTA, make_key


def hold(request_id: str, token: ApiKey, amount: int, unlimited: bool = False) -> quota.Hold:
    return quota.Hold(request_id, token.pk, token.user_id, unlimited, amount)


def charge(request_id: str, cost: int, channel_id: int | None = None) -> quota.Charge:
    return quota.Charge(request_id, cost, "gpt-4o", 10, 5, channel_id, "app", False, 12, "test")


@pytest.mark.backend
@pytest.mark.django_db(transaction=True)
class TestBatches:
    def test_holds_that_fit_together_are_taken_together(self, alice):
        token, _ = make_key(alice, remain_quota=1_000)
        outcomes = quota.reserve_many([hold(f"r{i}", token, 250) for i in range(4)])
        assert outcomes == [None] * 4
        assert ApiKey.objects.get(pk=token.pk).remain_quota == 0
        assert User.objects.get(pk=alice.pk).quota == ALICE_QUOTA - 1_000
        assert Reservation.objects.filter(state="held").count() == 4

    def test_when_the_sum_does_not_fit_each_hold_is_tried_in_order(self, alice):
        token, _ = make_key(alice, remain_quota=1_000)
        outcomes = quota.reserve_many([hold("a", token, 600), hold("b", token, 600), hold("c", token, 400)])
        assert [type(outcome).__name__ for outcome in outcomes] == ["NoneType", "QuotaExceeded", "NoneType"]
        assert "API key" in str(outcomes[1])
        assert ApiKey.objects.get(pk=token.pk).remain_quota == 0
        assert set(Reservation.objects.values_list("request_id", flat=True)) == {"a", "c"}

    def test_a_user_short_of_quota_gives_the_key_its_share_back(self, alice, bob):
        User.objects.filter(pk=alice.pk).update(quota=500)
        alice_token, _ = make_key(alice)
        bob_token, _ = make_key(bob)
        outcomes = quota.reserve_many([hold("a", alice_token, 800), hold("b", bob_token, 800)])
        assert "account" in str(outcomes[0]) and outcomes[1] is None
        assert ApiKey.objects.get(pk=alice_token.pk).remain_quota == 5_000_000
        assert User.objects.get(pk=alice.pk).quota == 500
        assert list(Reservation.objects.values_list("request_id", flat=True)) == ["b"]

    def test_a_request_id_reserved_before_or_twice_in_a_batch_holds_once(self, alice):
        token, _ = make_key(alice)
        quota.reserve("r1", token.pk, alice.pk, False, 100)
        replayed = [hold("r1", token, 100), hold("r2", token, 100), hold("r2", token, 100)]
        assert quota.reserve_many(replayed) == [None] * 3
        assert User.objects.get(pk=alice.pk).quota == ALICE_QUOTA - 200

    def test_settling_a_batch_moves_every_counter_once_per_request(self, alice, bob):
        alice_token, _ = make_key(alice)
        bob_token, _ = make_key(bob, unlimited_quota=True)
        quota.reserve_many([hold("a1", alice_token, 1_000), hold("a2", alice_token, 1_000)])
        quota.reserve_many([hold("b1", bob_token, 1_000, unlimited=True)])
        settled = quota.settle_many([charge("a1", 300), charge("a2", 1_200), charge("b1", 50), charge("a1", 300)])
        assert settled == [True, True, True, False]
        alice_token.refresh_from_db()
        assert (alice_token.remain_quota, alice_token.used_quota) == (5_000_000 - 1_500, 1_500)
        assert User.objects.get(pk=alice.pk).quota == ALICE_QUOTA - 1_500
        assert User.objects.get(pk=alice.pk).request_count == 2
        assert User.objects.get(pk=bob.pk).quota == ALICE_QUOTA - 50
        assert ApiKey.objects.get(pk=bob_token.pk).used_quota == 50
        assert Log.objects.filter(type="consume").count() == 3
        day = DailyUsage.objects.get(user_id=alice.pk)
        assert (day.requests, day.quota, day.prompt_tokens, day.completion_tokens) == (2, 1_500, 20, 10)
        assert quota.settle_many([charge("a2", 1_200)]) == [False]


@pytest.mark.django_db(transaction=True)  # the database pool tidies its connections before each batch
async def test_concurrent_submissions_share_batches_and_fail_alone():
    batches = []

    def apply(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        return [ValueError(f"odd {item}") if item % 2 else item * 10 for item in items]

    group = GroupCommit(apply)
    results = await asyncio.gather(*(group.submit(item) for item in range(20)), return_exceptions=True)
    assert [result if isinstance(result, int) else str(result) for result in results] == [
        item * 10 if item % 2 == 0 else f"odd {item}" for item in range(20)
    ]
    assert sorted(item for batch in batches for item in batch) == list(range(20))
    assert len(batches) < 20  # requests that arrive together commit together


@pytest.mark.django_db(transaction=True)
async def test_work_submitted_within_the_gathering_time_commits_in_one_batch():
    batches = []

    def apply(items: list[int]) -> list[int]:
        batches.append(items)
        return items

    group = GroupCommit(apply, gather_seconds=0.2)
    first = group.submit(1)
    await asyncio.sleep(0.05)  # a later loop iteration, as the next request's settlement would come
    assert await asyncio.gather(first, group.submit(2)) == [1, 2]
    assert batches == [[1, 2]]


@pytest.mark.django_db(transaction=True)
async def test_a_failed_transaction_fails_every_request_of_its_batch():
    def apply(items: list[int]) -> list[int]:
        raise RuntimeError("database is gone")

    group = GroupCommit(apply)
    results = await asyncio.gather(*(group.submit(item) for item in range(3)), return_exceptions=True)
    assert [str(result) for result in results] == ["database is gone"] * 3
    assert await asyncio.gather(GroupCommit(lambda items: items).submit(7)) == [7]


@pytest.mark.django_db(transaction=True)
async def test_sqlite_checkpoints_run_beside_the_batches_at_most_once_a_second(monkeypatch):
    checkpoints = []
    monkeypatch.setattr(db, "_checkpoint", lambda: checkpoints.append("copied"))
    monkeypatch.setattr(settings, "DATABASE_VENDOR", "sqlite")
    group = GroupCommit(lambda items: items)
    for item in range(3):
        assert await group.submit(item) == item
    await asyncio.sleep(0.1)
    assert checkpoints == ["copied"]  # after the first batch; the next ones came within the second

    monkeypatch.setattr(db.Checkpoints, "EVERY_SECONDS", 0)
    await group.submit(3)
    await asyncio.sleep(0.1)
    assert checkpoints == ["copied"] * 2

    monkeypatch.setattr(settings, "DATABASE_VENDOR", "postgresql")
    await group.submit(4)
    await asyncio.sleep(0.1)
    assert checkpoints == ["copied"] * 2  # other databases checkpoint on their own
