"""gpt-4-gizmo-*: one `prefix*` channel model serves every GPT under it, at the fixed per-call price."""

import asyncio

import orjson
import pytest
from django.test import AsyncClient

from tests.support.factories import make_channel, make_key
from tests.support.fakes.openai_upstream import REPLY
from tests.support.relay_client import consume_log, post_chat, sse_payloads

pytestmark = pytest.mark.django_db(transaction=True)

GPT = "gpt-4-gizmo-g-2fkFE8rbu"
PER_CALL_QUOTA = 50_000  # $0.1 x 500 000 quota per dollar, whatever the tokens


@pytest.fixture
def gizmo_channel(fake_openai, transactional_db):
    return make_channel(
        fake_openai.url, models=["gpt-4-gizmo-*", "gpt-4o-gizmo-*"], model_mapping={"gpt-4-gizmo-mapped": GPT}
    )


def ask(key: str, model: str, **fields):
    return post_chat(key, {"model": model, "messages": [{"role": "user", "content": "hi"}], **fields})


async def test_a_prefix_entry_serves_a_gpt_under_its_real_name_at_the_fixed_price(
    alice_key, gizmo_channel, fake_openai
):
    response = await ask(alice_key, GPT)
    assert response.status_code == 200
    assert orjson.loads(response.content)["choices"][0]["message"]["content"] == REPLY
    assert fake_openai.requests[0].body["model"] == GPT
    log = await consume_log(response["X-Request-Id"])
    assert (log.model, log.quota) == (GPT, PER_CALL_QUOTA)
    assert log.content.startswith("usage reported by upstream; fixed price $0.1")


async def test_a_streamed_call_costs_the_same_fixed_price(alice_key, gizmo_channel, fake_openai):
    response = await ask(alice_key, "gpt-4o-gizmo-g-other", stream=True)
    await sse_payloads(response)
    log = await consume_log(response["X-Request-Id"])
    assert log.quota == PER_CALL_QUOTA


async def test_the_model_mapping_is_looked_up_by_the_real_name(alice_key, gizmo_channel, fake_openai):
    response = await ask(alice_key, "gpt-4-gizmo-mapped")
    assert response.status_code == 200
    assert fake_openai.requests[0].body["model"] == GPT


async def test_a_name_outside_every_prefix_is_an_unknown_model(alice_key, gizmo_channel, fake_openai):
    response = await ask(alice_key, "gpt-4-gizm")
    assert response.status_code == 404
    assert fake_openai.requests == []


async def test_the_model_list_shows_the_pattern_entries_as_they_are(alice_key, gizmo_channel):
    response = await AsyncClient().get("/v1/models", headers={"Authorization": f"Bearer {alice_key}"})
    assert [model["id"] for model in orjson.loads(response.content)["data"]] == ["gpt-4-gizmo-*", "gpt-4o-gizmo-*"]


async def test_one_gpt_can_be_looked_up_by_its_real_name(alice_key, gizmo_channel):
    response = await AsyncClient().get(f"/v1/models/{GPT}", headers={"Authorization": f"Bearer {alice_key}"})
    assert response.status_code == 200
    assert orjson.loads(response.content)["id"] == GPT


async def test_a_key_limited_to_a_prefix_may_use_every_gpt_under_it(alice, gizmo_channel, fake_openai):
    _, key = await asyncio.to_thread(make_key, alice, model_limits=["gpt-4-gizmo-*"])
    assert (await ask(key, GPT)).status_code == 200
    assert (await ask(key, "gpt-4o-gizmo-g-other")).status_code == 403
