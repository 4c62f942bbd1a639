"""/metrics in Prometheus format: counters move with traffic; protected by token or network."""

import asyncio

import orjson
import pytest
from django.test import AsyncClient, Client, override_settings

from tests.support.factories import make_channel
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.relay_client import HELLO

pytestmark = pytest.mark.django_db(transaction=True)


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the sample lines of `name` that carry all `labels` (0 when none)."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + "{", name + " ")) and all(label in line for label in wanted)
    )


async def scrape() -> str:
    response = await AsyncClient().get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


async def test_counters_move_after_traffic(alice_key, openai_channel, fake_openai):
    before = await scrape()
    headers = {"Authorization": f"Bearer {alice_key}"}
    fake_openai.script.append(Behaviour(status=500, body={"error": {"message": "boom"}}))
    await AsyncClient().post(
        "/v1/chat/completions", orjson.dumps(HELLO), content_type="application/json", headers=headers
    )
    await AsyncClient().post(
        "/v1/chat/completions", orjson.dumps(HELLO), content_type="application/json", headers=headers
    )
    after = await scrape()
    ok = {"endpoint": "chat", "model": "gpt-4o", "status": "200", "stream": "false"}
    assert sample(after, "gateway_requests_total", **ok) == sample(before, "gateway_requests_total", **ok) + 1
    failed = {"endpoint": "chat", "status": "500"}
    assert sample(after, "gateway_requests_total", **failed) == sample(before, "gateway_requests_total", **failed) + 1
    assert sample(after, "gateway_upstream_errors_total", status="500") > sample(
        before, "gateway_upstream_errors_total", status="500"
    )
    assert sample(after, "gateway_quota_charged_total", model="gpt-4o") > sample(
        before, "gateway_quota_charged_total", model="gpt-4o"
    )
    assert sample(after, "gateway_overhead_seconds_count") > sample(before, "gateway_overhead_seconds_count")
    assert sample(after, "gateway_request_seconds_count", endpoint="chat") > sample(
        before, "gateway_request_seconds_count", endpoint="chat"
    )


def test_other_networks_are_refused():
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 403


@override_settings(METRICS_TOKEN="scrape-me")
def test_a_token_replaces_the_network_rule():
    assert Client().get("/metrics").status_code == 403
    assert (
        Client(REMOTE_ADDR="203.0.113.9").get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("model", "status", "label"), [("tenant-a1b2c3", 200, "tenant-*"), ("made-up-model-7f3a", 404, "other")]
)
async def test_the_model_label_is_the_channel_entry_that_serves_the_model_else_other(
    alice_key, fake_openai, transactional_db, model, status, label
):
    await asyncio.to_thread(make_channel, fake_openai.url, models=["gpt-4o", "tenant-*"])
    before = await scrape()
    response = await AsyncClient().post(
        "/v1/chat/completions",
        orjson.dumps({**HELLO, "model": model}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {alice_key}"},
    )
    assert response.status_code == status
    after = await scrape()
    assert model not in after
    counted = {"endpoint": "chat", "model": label, "status": str(status)}
    assert sample(after, "gateway_requests_total", **counted) == sample(before, "gateway_requests_total", **counted) + 1
    charged = sample(after, "gateway_quota_charged_total", model=label) - sample(
        before, "gateway_quota_charged_total", model=label
    )
    assert (charged > 0) == (status == 200)


async def test_an_auto_disabled_channel_is_counted(alice_key, openai_channel, fake_openai):
    before = await scrape()
    fake_openai.script.append(Behaviour(status=401, body={"error": {"message": "Unauthorized"}}))
    await AsyncClient().post(
        "/v1/chat/completions",
        orjson.dumps(HELLO),
        content_type="application/json",
        headers={"Authorization": f"Bearer {alice_key}"},
    )
    after = await scrape()
    assert (
        sample(after, "gateway_channels_auto_disabled_total")
        == sample(before, "gateway_channels_auto_disabled_total") + 1
    )
