"""With the database down the relay answers 503 quickly, in OpenAI's shape, and charges nothing."""

import httpx
import pytest

from tests.live_server import LiveGateway

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_the_relay_answers_503_when_the_database_is_unreachable():
    server = LiveGateway({"SQL_DSN": "postgres://postgres@127.0.0.1:9/nowhere"})  # nothing listens on port 9
    try:
        # A client timeout well below a hung connection's: the answer must not wait on the database.
        answer = httpx.post(
            f"{server.url}/v1/chat/completions",
            json=HELLO,
            timeout=15,
            headers={"Authorization": "Bearer sk-" + "a" * 48},
        )
    finally:
        server.stop()
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "db_down"
