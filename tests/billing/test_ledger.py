"""The ledger: billing.ledger writes every log row and moves the daily totals with it, and the settlement tells
channels_app what each channel served, all in the transaction of the money they record."""

import uuid
from dataclasses import dataclass

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import daily_usage, ledger, quota
from billing.accounts import users
from billing.models import ApiKey, DailyUsage, Log, Reservation, User
from billing.payments import redemptions
from channels_app import healing
from channels_app.models import Channel
from channels_app.routing import channel_info
from tests.support.factories import make_channel, make_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]


@dataclass(frozen=True)
class Caller:
    """The key fields quota.record_failure reads."""

    user_id: int
    token_id: int
    token_name: str = "app"


@pytest.fixture
def key(alice: User) -> ApiKey:
    return make_key(alice)[0]


@pytest.fixture
def channel() -> Channel:
    return make_channel("http://upstream.example")


def charge(request_id: str, cost: int, channel_id: int | None) -> quota.Charge:
    return quota.Charge(request_id, cost, "gpt-4o", 10, 5, channel_id, "app", False, 1, "")


def settle(key: ApiKey, cost: int, channel_id: int | None) -> str:
    request_id = uuid.uuid4().hex
    quota.reserve(request_id, key.pk, key.user_id, False, cost)
    assert quota.settle(charge(request_id, cost, channel_id))
    return request_id


def consume(key: ApiKey, quota_used: int, request_id: str = "") -> Log:
    fields = {"user_id": key.user_id, "token_id": key.pk, "prompt_tokens": 2, "completion_tokens": 1}
    return Log(type=Log.Type.CONSUME, model="m", quota=quota_used, request_id=request_id or uuid.uuid4().hex, **fields)


def day_totals() -> list[tuple[int, int, int, int]]:
    return list(DailyUsage.objects.values_list("requests", "prompt_tokens", "completion_tokens", "quota"))


def test_a_consume_row_adds_to_its_day_and_a_refund_takes_it_off_again(key):
    charged = ledger.write(consume(key, 100, "r-1"))
    assert charged.pk is not None and day_totals() == [(1, 2, 1, 100)]
    ledger.write(Log(type=Log.Type.REFUND, user_id=key.user_id, token_id=key.pk, quota=100, request_id="r-1"))
    assert day_totals() == [(1, 2, 1, 0)]


def test_a_batch_is_one_insert_and_one_change_per_day_row(key, bob):
    other = make_key(bob)[0]
    with CaptureQueriesContext(connection) as queries:
        ledger.write_many([consume(key, 10), consume(key, 20), consume(other, 5)])
    inserts = [query for query in queries if "INSERT" in query["sql"] and "billing_log" in query["sql"]]
    assert len(inserts) == 1 and Log.objects.count() == 3
    assert sorted(day_totals()) == [(1, 2, 1, 5), (2, 4, 2, 30)]


@pytest.mark.parametrize("kind", [Log.Type.TOPUP, Log.Type.MANAGE, Log.Type.ERROR])
def test_rows_that_are_not_consumption_count_in_no_total(key, kind):
    ledger.write(Log(type=kind, user_id=key.user_id, token_id=key.pk, quota=500, request_id="r-1"))
    assert Log.objects.filter(type=kind).exists() and not DailyUsage.objects.exists()


def test_a_row_whose_totals_cannot_move_is_not_written(key, monkeypatch):
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("aggregate write failed")

    monkeypatch.setattr(daily_usage, "add", broken)
    with pytest.raises(RuntimeError):
        ledger.write(consume(key, 100))
    with pytest.raises(RuntimeError):
        ledger.write_many([consume(key, 100)])
    assert not Log.objects.exists()


def test_every_money_movement_writes_its_rows_through_the_ledger(key, channel, monkeypatch):
    """Rows written past the ledger would miss the daily totals: each writer's rows are the ledger's."""
    written: list[Log] = []
    write, write_many = ledger.write, ledger.write_many

    def spy_write(log: Log) -> Log:
        written.append(log)
        return write(log)

    def spy_write_many(logs: list[Log]) -> None:
        written.extend(logs)
        write_many(logs)

    monkeypatch.setattr(ledger, "write", spy_write)
    monkeypatch.setattr(ledger, "write_many", spy_write_many)
    alice = User.objects.get(pk=key.user_id)
    settled = settle(key, 300, channel.pk)
    quota.refund(charge(settled, 300, channel.pk))
    quota.record_failure("r-failed", Caller(key.user_id, key.pk), [channel.pk], "gpt-4o", "upstream 500")
    users.adjust_quota(alice, 1_000, "goodwill")
    [code] = redemptions.create_batch("gift", 250, 1)
    redemptions.redeem(alice, code)
    healing.auto_disable(channel_info(channel), "upstream status 401")
    assert sorted(log.type for log in written) == ["consume", "error", "manage", "manage", "refund", "topup"]
    assert Log.objects.count() == len(written)


def test_settlement_and_refund_move_the_channel_counter(key, channel):
    first = settle(key, 300, channel.pk)
    settle(key, 200, channel.pk)
    settle(key, 50, None)
    channel.refresh_from_db()
    assert channel.used_quota == 500
    quota.refund(charge(first, 300, channel.pk))
    channel.refresh_from_db()
    assert channel.used_quota == 200


def test_a_channel_counter_that_cannot_move_rolls_the_settlement_back(key, channel):
    def broken(**_signal: object) -> None:
        raise RuntimeError("channel counter failed")

    quota.channels_charged.connect(broken)
    try:
        request_id = uuid.uuid4().hex
        quota.reserve(request_id, key.pk, key.user_id, False, 300)
        with pytest.raises(RuntimeError):
            quota.settle(charge(request_id, 300, channel.pk))
    finally:
        quota.channels_charged.disconnect(broken)
    key.refresh_from_db()
    channel.refresh_from_db()
    assert Reservation.objects.get(request_id=request_id).state == Reservation.State.HELD
    assert (key.used_quota, channel.used_quota) == (0, 0) and not Log.objects.exists()
