"""A warm request reaches the database only to reserve and to settle: the key, the channel list and the
prices come from the caches, and each of the two steps is a fixed, small number of statements."""

import re

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import pricing, settlement
from billing.accounts import key_auth
from channels_app import channels, routing
from gateway_project import db
from gateway_project.db import run_db
from relay.sse import DONE
from tests.support.factories import make_channel
from tests.support.fakes import gemini_upstream
from tests.support.fakes.recording import served
from tests.support.fakes.responses_upstream import FakeResponses
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


@pytest.fixture(scope="module")
def fake_responses() -> FakeResponses:
    return FakeResponses("hot").start()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_passed_through_response_adds_its_owner_only(
    alice_key, fake_responses, warm_caches, database_work, stream
):
    """What the Responses API costs more than chat: one upsert of the response's owner, none when the upstream
    does not store it, and one lookup of the owner of a previous response."""
    await sync_to_async(make_channel)(fake_responses.url, models=["gpt-5"])
    body = {"model": "gpt-5", "input": "Hello", "stream": stream}
    await responded(alice_key, body)
    database_work.clear()

    previous = await responded(alice_key, body)
    assert sorted(database_work) == sorted(
        [("reserve_many", RESERVE_QUERIES), ("settle_many", SETTLE_QUERIES), ("remember", 1)]
    )
    database_work.clear()
    await responded(alice_key, {**body, "store": False})
    assert sorted(database_work) == [("reserve_many", RESERVE_QUERIES), ("settle_many", SETTLE_QUERIES)]
    database_work.clear()
    await responded(alice_key, {**body, "store": False, "previous_response_id": previous})
    assert database_work[:2] == [("reserve_many", RESERVE_QUERIES), ("owner_channel", 1)]


async def responded(key: str, body: dict) -> str:
    """Send one Responses request, read the whole answer, wait for its settlement; the response's id."""
    response = await post_chat(key, body, path="/v1/responses")
    assert response.status_code == 200
    raw = b"".join([chunk async for chunk in response.streaming_content]) if body["stream"] else response.content
    await settlement.drain()
    return re.search(rb'"id": ?"(resp_[^"]+)"', raw).group(1).decode()


@pytest.mark.parametrize("mode", ["random", "polling"])
async def test_a_channel_of_several_keys_adds_no_database_work(
    alice_key, fake_openai, warm_caches, database_work, mode
):
    keys = "sk-a\nsk-b\nsk-c"
    await run_db(channels.create_channel, key=keys, key_mode=mode, base_url=fake_openai.url, models=["gpt-4o"])
    body = {**HELLO, "stream": False}
    await answered(alice_key, body)
    database_work.clear()

    for _ in range(3):
        await answered(alice_key, body)
    assert database_work == [("reserve_many", RESERVE_QUERIES), ("settle_many", SETTLE_QUERIES)] * 3
    assert {request.headers["Authorization"] for request in fake_openai.requests[1:]} <= {
        "Bearer sk-a",
        "Bearer sk-b",
        "Bearer sk-c",
    }


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
