"""A warm request reaches the database only to reserve and to settle: the key, the channel list and the
prices come from the caches, and each of the two steps is a fixed, small number of statements."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import pricing, settlement
from billing.accounts import key_auth
from channels_app import routing
from gateway_project import db
from relay.sse import DONE
from tests.support.factories import make_channel
from tests.support.fakes import gemini_upstream
from tests.support.fakes.recording import served
from tests.support.relay_client import HELLO, post_chat, sse_payloads

fake_gemini_server, fake_gemini = served(gemini_upstream.FakeGemini, "fake_gemini")
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend, pytest.mark.cache]

RESERVE_QUERIES = 4  # which reservations exist, the key's and the user's conditional decrement, the insert
SETTLE_QUERIES = 7  # lock the reservation, mark it, key, user, channel, the log, the daily usage row
DATA_STATEMENTS = ("SELECT", "INSERT", "UPDATE", "DELETE")  # not BEGIN/COMMIT, which only SQLite logs


@pytest.fixture
def warm_caches(monkeypatch) -> None:
    """The caches re-check the shared cache once a second: make "warm" independent of the test's speed."""
    monkeypatch.setattr(key_auth.RECENT, "max_age", 3600)
    monkeypatch.setattr(pricing.PRICES, "recheck_seconds", 3600)
    monkeypatch.setattr(routing.INDEX, "recheck_seconds", 3600)


@pytest.fixture
def database_work(monkeypatch) -> list[tuple[str, int]]:
    """(function, statements) of every piece of work the relay sends to the database pool. SQLite's WAL
    checkpoint (at most once a second after commits, gateway_project.db.Checkpoints) is housekeeping, not a
    request's work: on a slow machine it would land between the two requests."""
    monkeypatch.setattr(db.Checkpoints, "EVERY_SECONDS", 3600)
    done = []
    call = db._call

    def counted(fn, *args, **kwargs):
        with CaptureQueriesContext(connection) as queries:
            result = call(fn, *args, **kwargs)
        name = getattr(fn, "func", fn).__name__  # run_db hands the pool a functools.partial
        done.append((name, sum(is_data_statement(query["sql"]) for query in queries)))
        return result

    monkeypatch.setattr(db, "_call", counted)
    return done


def is_data_statement(sql: str) -> bool:
    """Django logs a batch insert (executemany) as "N times: INSERT ..."; that is one statement."""
    return re.sub(r"^\d+ times: ", "", sql.lstrip()).upper().startswith(DATA_STATEMENTS)


@pytest.mark.parametrize("after_answer", [False, True], ids=["settled-first", "settled-after"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_warm_request_only_reserves_and_settles(
    alice_key, openai_channel, fake_openai, warm_caches, database_work, stream, after_answer, settings
):
    settings.SETTLE_AFTER_ANSWER = after_answer
    settle = "_settle_many_owed" if after_answer else "settle_many"  # billing.settlement
    body = {**HELLO, "stream": stream}
    await answered(alice_key, body)  # fills the caches and creates the day's usage row
    database_work.clear()

    await answered(alice_key, body)
    assert database_work == [("reserve_many", RESERVE_QUERIES), (settle, SETTLE_QUERIES)]


async def answered(key: str, body: dict) -> None:
    """Send one request, read the whole answer and wait for its settlement (after the answer, see
    billing.journal)."""
    response = await post_chat(key, body)
    assert response.status_code == 200
    if body["stream"]:
        assert (await sse_payloads(response))[-1] == DONE
    await settlement.drain()


@pytest.fixture
def gemini_channel(fake_gemini: gemini_upstream.FakeGemini, transactional_db) -> None:
    make_channel(fake_gemini.url, models=["gemini-2.5-flash"], key=gemini_upstream.API_KEY, type="gemini")


@pytest.mark.parametrize("method", ["generateContent", "streamGenerateContent?alt=sse"])
async def test_a_warm_gemini_pass_through_only_reserves_and_settles(
    alice_key, gemini_channel, warm_caches, database_work, method
):
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    for _ in range(2):  # the first fills the caches and creates the day's usage row
        database_work.clear()
        response = await post_chat(alice_key, body, path=f"/v1beta/models/gemini-2.5-flash:{method}")
        assert response.status_code == 200
        if response.streaming:
            assert b"".join([chunk async for chunk in response.streaming_content])
        await settlement.drain()
    assert database_work == [("reserve_many", RESERVE_QUERIES), ("settle_many", SETTLE_QUERIES)]
