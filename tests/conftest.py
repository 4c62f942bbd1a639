"""A tiny named world: alice owns keys and quota, bob is another user, root is staff.

Tests marked `backend` touch the database or cache in ways that differ between backends; the matrix
in scripts/test-matrix.sh runs them on SQLite, PostgreSQL and MariaDB, with and without Redis.
"""

import tempfile
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import cache, caches
from django.test import Client
from django.utils import translation

from billing.models import AccessToken, User
from channels_app import healing
from channels_app.models import Channel
from gateway_project import snapshot
from tests.support.factories import ALICE_QUOTA, make_channel, make_key
from tests.support.fakes.openai_upstream import FakeOpenAI, start
from tests.support.live_server import LiveGateway


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
    caches["affinity"].clear()
    snapshot.reset_all()
    healing.Rests.streaks.clear()


@pytest.fixture(autouse=True)
def _default_language() -> Iterator[None]:
    """A test client's request leaves the language it chose active in the test's thread (LocaleMiddleware):
    every test starts from LANGUAGE_CODE."""
    yield
    translation.deactivate()


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
    fake_openai_server.revoked.clear()
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


@pytest.fixture
def admin_client(root: User) -> Client:
    """A browser signed in to admin as root."""
    client = Client()
    client.force_login(root)
    return client


@pytest.fixture
def browser() -> Iterator[object]:
    """A headless chromium for the browser tests (tests/support/browser.py, which skips without one)."""
    from tests.support.browser import chromium  # deferred: selenium is needed by the browser tests only

    with chromium() as driver:
        yield driver


@pytest.fixture
def styled_gateway(transactional_db) -> Iterator[LiveGateway]:
    """The real server serving admin's and the console's CSS, for browser tests' screenshots."""
    from tests.support.browser import styled  # deferred, as above

    server = LiveGateway(extra_env=styled())
    yield server
    server.stop()


@pytest.fixture
def alice_key(alice: User) -> str:
    return make_key(alice)[1]


@pytest.fixture
def openai_channel(fake_openai: FakeOpenAI, transactional_db) -> Channel:
    return make_channel(fake_openai.url)


@pytest.fixture
def access_token(root: User) -> str:
    return AccessToken.issue(root)[1]
