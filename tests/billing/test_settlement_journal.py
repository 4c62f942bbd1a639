"""Settling after the answer loses nothing: a charge is journaled before the answer goes out, and whatever a
process could not commit before it died is settled, exactly once, by the next web process on the host."""

import os
import signal
import threading
from pathlib import Path

import httpx
import orjson
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import F

from billing import journal, quota, settlement
from billing.accounts import key_auth
from billing.models import ApiKey, Log, Reservation, User
from channels_app.models import Channel
from gateway_project.asgi_handlers import Lifespan
from tests.support.factories import ALICE_QUOTA, make_key
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.live_server import LiveGateway, wait_until
from tests.support.relay_client import HELLO

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

KEY_QUOTA = 5_000_000


@pytest.fixture
def journal_dir(tmp_path, settings) -> Path:
    settings.SETTLEMENT_JOURNAL_DIR = tmp_path
    return tmp_path


def charge(request_id: str, cost: int) -> quota.Charge:
    return quota.Charge(request_id, cost, "gpt-4o", 10, 5, None, "app", False, 12, "test")


def orphan(directory: Path, *charges: quota.Charge) -> Path:
    """A segment as a process that died leaves it: complete lines, nobody holding its lock."""
    path = directory / "otherhost-4242-1-1.jsonl"
    path.write_bytes(b"".join(orjson.dumps(c.__dict__) + b"\n" for c in charges))
    return path


def balances(user: User, token: ApiKey) -> tuple[int, int, int, int]:
    user, token = User.objects.get(pk=user.pk), ApiKey.objects.get(pk=token.pk)
    return user.quota, user.used_quota, token.remain_quota, token.used_quota


def test_an_orphan_segment_is_settled_once_and_deleted(alice, journal_dir):
    token, _ = make_key(alice, remain_quota=KEY_QUOTA)
    quota.reserve("held", token.pk, alice.pk, False, 1000)
    quota.reserve("settled", token.pk, alice.pk, False, 1000)
    quota.settle(charge("settled", 300))
    path = orphan(journal_dir, charge("held", 700), charge("settled", 300), charge("unknown", 50))
    (journal_dir / "truncated.jsonl").write_bytes(orjson.dumps(charge("held", 700).__dict__)[:40])

    assert journal.replay_orphans() == 1
    assert not path.exists() and not list(journal_dir.iterdir())
    assert journal.replay_orphans() == 0
    assert balances(alice, token) == (ALICE_QUOTA - 1000, 1000, KEY_QUOTA - 1000, 1000)
    assert Reservation.objects.get(request_id="held").state == "settled"
    assert Log.objects.get(type="consume", request_id="held").quota == 700


def test_a_charge_whose_reservation_the_reconciler_released_is_charged_in_full(alice, journal_dir):
    token, _ = make_key(alice, remain_quota=KEY_QUOTA)
    quota.reserve("late", token.pk, alice.pk, False, 1000)
    quota.release("late")  # the process was gone longer than RESERVATION_STALE_SECONDS
    orphan(journal_dir, charge("late", 700))

    assert journal.replay_orphans() == 1
    assert balances(alice, token) == (ALICE_QUOTA - 700, 700, KEY_QUOTA - 700, 700)
    assert Reservation.objects.get(request_id="late").state == "settled"


def test_a_refunded_charge_is_not_charged_again_by_a_replay(alice, journal_dir):
    token, _ = make_key(alice, remain_quota=KEY_QUOTA)
    quota.reserve("refunded", token.pk, alice.pk, False, 1000)
    quota.settle(charge("refunded", 700))
    quota.refund(charge("refunded", 700))
    orphan(journal_dir, charge("refunded", 700))

    assert journal.replay_orphans() == 0
    assert balances(alice, token) == (ALICE_QUOTA, 0, KEY_QUOTA, 0)


def test_a_live_process_segment_is_left_alone_and_removed_when_finished(journal_dir):
    writer = journal.Journal()
    segment = writer.write(charge("mine", 700))
    [path] = journal_dir.glob("*.jsonl")
    assert f"-{os.getpid()}-" in path.name

    assert journal.replay_orphans() == 0  # its writer (this process) holds the lock
    assert path.exists()
    writer.done(segment)
    assert path.exists()  # still the current segment: kept open for the next charge
    writer.current.written = journal.SEGMENT_ENTRIES
    segment = writer.write(charge("next", 1))  # rotates: the finished segment goes
    assert not path.exists()
    writer.done(segment)
    writer.close()  # at exit
    assert not list(journal_dir.iterdir())


def test_an_answer_whose_settlement_never_committed_is_charged_by_the_next_process(alice, openai_channel, fake_openai):
    token, key = make_key(alice, remain_quota=KEY_QUOTA)
    fake_openai.script.append(Behaviour(delay=1.0))
    gateway = LiveGateway({"SETTLE_AFTER_ANSWER": "true"})
    answer: dict = {}

    def ask() -> None:
        headers = {"Authorization": f"Bearer {key}"}
        answer["response"] = httpx.post(f"{gateway.url}/v1/chat/completions", json=HELLO, headers=headers, timeout=30)

    asking = threading.Thread(target=ask)
    try:
        asking.start()
        wait_until(lambda: Reservation.objects.filter(state="held").exists())
        # Hold a lock the settlement needs (the channel's row; SQLite: the write lock) until the process is dead.
        with transaction.atomic():
            Channel.objects.filter(pk=openai_channel.pk).update(used_quota=F("used_quota"))
            asking.join(30)
            assert answer["response"].status_code == 200  # answered while its charge could not commit
            gateway.process.send_signal(signal.SIGKILL)
            gateway.process.wait(30)
    finally:
        gateway.stop()
    request_id = answer["response"].headers["X-Request-Id"]
    assert Reservation.objects.get(request_id=request_id).state == "held"
    assert not Log.objects.filter(type="consume").exists()
    assert list(Path(settings.SETTLEMENT_JOURNAL_DIR).glob("*.jsonl"))

    # The next process on the host settles the journals of the dead ones when it starts.
    successor = LiveGateway({"SETTLE_AFTER_ANSWER": "true"})
    try:
        wait_until(lambda: Log.objects.filter(type="consume", request_id=request_id).exists())
    finally:
        successor.stop()
    cost = Log.objects.get(type="consume", request_id=request_id).quota
    assert cost > 0
    assert Reservation.objects.get(request_id=request_id).state == "settled"
    assert balances(alice, token) == (ALICE_QUOTA - cost, cost, KEY_QUOTA - cost, cost)


async def test_a_charge_the_database_refused_waits_in_the_journal_and_is_retried(
    alice, journal_dir, monkeypatch, settings
):
    settings.SETTLE_AFTER_ANSWER = True
    monkeypatch.setattr(settlement, "RETRY_CAP_SECONDS", 0)
    monkeypatch.setattr(settlement, "_journal", journal.Journal())  # one that writes into journal_dir
    token, key = await reserved(alice, "retried")
    refusals = []

    def database_down_once(charges):
        if not refusals:
            refusals.append(charges)
            raise OperationalError("the database went away")
        return quota.settle_many(charges)

    monkeypatch.setattr(settlement._journaled_settlements, "apply", database_down_once)
    await settlement.settle(key, charge("retried", 700))  # returns once journaled
    assert len(list(journal_dir.glob("*.jsonl"))) == 1

    await settlement.drain()
    assert len(refusals) == 1
    assert await sync_to_async(balances)(alice, token) == (ALICE_QUOTA - 700, 700, KEY_QUOTA - 700, 700)
    assert settlement._journal.current.pending == 0  # its entry is done: nothing left for a successor


async def test_without_a_writable_journal_a_charge_commits_before_the_answer(alice, tmp_path, monkeypatch, settings):
    settings.SETTLE_AFTER_ANSWER = True
    settings.SETTLEMENT_JOURNAL_DIR = tmp_path / "not-a-directory"
    settings.SETTLEMENT_JOURNAL_DIR.write_text("")
    monkeypatch.setattr(settlement, "_journal", journal.Journal())
    token, key = await reserved(alice, "unjournaled")

    await settlement.settle(key, charge("unjournaled", 700))
    assert await sync_to_async(balances)(alice, token) == (ALICE_QUOTA - 700, 700, KEY_QUOTA - 700, 700)


async def test_a_server_shutting_down_commits_the_charges_still_gathering(alice, journal_dir, monkeypatch, settings):
    settings.SETTLE_AFTER_ANSWER = True
    monkeypatch.setattr(settlement, "_journal", journal.Journal())
    token, key = await reserved(alice, "stopping")
    await settlement.settle(key, charge("stopping", 700))  # journaled; its batch gathers for a while
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message["type"])

    await Lifespan()({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert await sync_to_async(balances)(alice, token) == (ALICE_QUOTA - 700, 700, KEY_QUOTA - 700, 700)


async def reserved(alice: User, request_id: str) -> tuple[ApiKey, key_auth.KeyInfo]:
    """A key of alice's with 1,000 held on it for `request_id`, as the relay reserves before answering."""
    token, _ = await sync_to_async(make_key)(alice, remain_quota=KEY_QUOTA)
    key = await sync_to_async(key_auth._load)(token.key_hash)
    await settlement.reserve(request_id, key, 1000)
    return token, key
