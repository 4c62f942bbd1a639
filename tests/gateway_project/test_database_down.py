"""With the database down the relay and the model list answer 503 quickly, in OpenAI's shape, and charge nothing."""

import httpx
import pytest

from tests.support.live_server import LiveGateway
from tests.support.relay_client import HELLO

pytestmark = pytest.mark.django_db(transaction=True)

SOME_KEY = {"Authorization": "Bearer sk-" + "a" * 48}


@pytest.fixture(scope="module")
def gateway_without_database():
    server = LiveGateway({"SQL_DSN": "postgres://postgres@127.0.0.1:9/nowhere"})  # nothing listens on port 9
    yield server
    server.stop()


def assert_db_down(answer: httpx.Response) -> None:
    assert answer.status_code == 503
    assert answer.json()["error"] == {
        "message": "the gateway's database is unavailable; retry shortly",
        "type": "service_unavailable",
        "param": None,
        "code": "db_down",
    }


def test_the_relay_answers_503_when_the_database_is_unreachable(gateway_without_database):
    # A client timeout well below a hung connection's: the answer must not wait on the database.
    answer = httpx.post(f"{gateway_without_database.url}/v1/chat/completions", json=HELLO, timeout=15, headers=SOME_KEY)
    assert_db_down(answer)


@pytest.mark.parametrize(
    "path", ["/v1/models", "/v1/models/gpt-4o", "/v1/dashboard/billing/subscription", "/v1/dashboard/billing/usage"]
)
def test_the_model_list_and_billing_answer_503_when_the_database_is_unreachable(gateway_without_database, path):
    assert_db_down(httpx.get(f"{gateway_without_database.url}{path}", timeout=15, headers=SOME_KEY))
