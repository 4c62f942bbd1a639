"""With the database down the relay answers 503 quickly, in OpenAI's shape, and charges nothing."""

import httpx
import pytest

from tests.live_server import LiveGateway

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_relay_answers_503_quickly_when_the_database_is_unreachable():
    server = LiveGateway({"SQL_DSN": "postgres://postgres@127.0.0.1:9/nowhere"})  # nothing listens on port 9
    try:
        started = time.monotonic()
        answer = httpx.post(
            f"{server.url}/v1/chat/completions",
            headers={"Authorization": "Bearer sk-" + "a" * 48},
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "db_down"
