"""Redis is only a cache: while it is unreachable the gateway keeps serving from the database and says so."""

import httpx
import pytest

from billing.models import Log
from tests.support.factories import make_key
from tests.support.live_server import LiveGateway

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_REDIS = "redis://127.0.0.1:9/0"  # the discard port: nothing answers Redis there


def test_requests_are_served_and_billed_while_redis_is_down(alice, openai_channel):
    _, key = make_key(alice)
    server = LiveGateway({"REDIS_CONN_STRING": DEAD_REDIS, "RATE_LIMITS": '{"default": {"key_rpm": 100}}'})
    try:
        status = httpx.get(f"{server.url}/api/status").json()
        assert (status["cache"], status["cache_ok"]) == ("redis", False)
        answer = httpx.post(
            f"{server.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert Log.objects.filter(type="consume", request_id=answer.headers["X-Request-Id"]).count() == 1
    finally:
        server.stop()


def test_status_reports_a_healthy_memory_cache(client):
    assert client.get("/api/status").json()["cache_ok"] is True
