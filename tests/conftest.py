"""A tiny named world: alice owns keys and quota, bob is another user, root is staff.

Tests marked `backend` touch the database or cache in ways that differ between backends; the matrix
in scripts/test-matrix.sh runs them on SQLite, PostgreSQL and MariaDB, with and without Redis.
"""

import asyncio
import tempfile

import pytest
from django.conf import settings
from django.core.cache import cache

from billing.models import AccessToken, ApiKey, User
from channels_app import healing
from channels_app.models import Channel
from gateway_project import snapshot
from tests.fakes.openai_upstream import FakeOpenAI, start

ALICE_QUOTA = 10_000_000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backend: database sensitive; runs on SQLite, PostgreSQL and MariaDB")
    config.addinivalue_line("markers", "cache: cache sensitive as well; also runs on each database with Redis")
    # In process, a charge commits before its answer, so a test can read the ledger as soon as it has the
    # answer. Settling after the answer (the default) is tested where a test asks for it (LiveGateway).
    settings.SETTLE_AFTER_ANSWER = False
    # This run's settlement journals, its own servers' included, stay out of DATA_DIR's.
    settings.SETTLEMENT_JOURNAL_DIR = tempfile.mkdtemp(prefix="gateway-journal-")


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    cache.clear()
    snapshot.reset_all()
    healing.Rests.streaks.clear()


@pytest.fixture(scope="session")
def fake_openai_server() -> FakeOpenAI:
    fake = FakeOpenAI()
    start(fake)
    return fake


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> FakeOpenAI:
    fake_openai_server.script.clear()
    fake_openai_server.requests.clear()
    fake_openai_server.cancelled_streams = 0
    return fake_openai_server


@pytest.fixture
def alice(transactional_db) -> User:
    return User.objects.create_user("alice", password="alice-pass", quota=ALICE_QUOTA)


@pytest.fixture
def bob(transactional_db) -> User:
    return User.objects.create_user("bob", password="bob-pass", quota=ALICE_QUOTA)


@pytest.fixture
def root(transactional_db) -> User:
    return User.objects.create_superuser("root", password="root-pass", quota=ALICE_QUOTA)


def make_key(user: User, **fields) -> tuple[ApiKey, str]:
    fields.setdefault("remain_quota", 5_000_000)
    token = ApiKey(user=user, name=fields.pop("name", "app"), **fields)
    plain = token.set_key()
    token.save()
    return token, plain


@pytest.fixture
def alice_key(alice: User) -> str:
    return make_key(alice)[1]


def make_channel(base_url: str, models: list[str] | None = None, key: str = "sk-upstream-secret", **fields) -> Channel:
    channel = Channel(
        name=fields.pop("name", "fake"),
        type=fields.pop("type", "openai"),
        base_url=base_url,
        models=models or ["gpt-4o"],
        **fields,
    )
    channel.key = key
    channel.save()
    return channel


@pytest.fixture
def openai_channel(fake_openai: FakeOpenAI, transactional_db) -> Channel:
    return make_channel(fake_openai.url)


@pytest.fixture
def access_token(root: User) -> str:
    return AccessToken.issue(root)[1]


async def wait_for(predicate, timeout: float = 5.0) -> None:
    """Poll a synchronous predicate (run in the DB thread pool) until it holds."""
    from gateway_project.db import run_db

    deadline = asyncio.get_running_loop().time() + timeout
    while not await run_db(predicate):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
