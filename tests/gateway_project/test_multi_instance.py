"""Two gateway processes on one database (and Redis, in the Redis legs of the matrix): a change made on
one is honoured by the other within SYNC_FREQUENCY (1 s here; the bound allows a second for polling)."""

import httpx
import pytest

from tests.support.factories import make_key
from tests.support.live_server import SYNC_FREQUENCY, LiveGateway, chat, status_within

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend, pytest.mark.cache]


@pytest.fixture
def two_gateways(transactional_db):
    first, second = LiveGateway(), LiveGateway()
    yield first, second
    first.stop()
    second.stop()


def test_a_key_disabled_on_one_instance_stops_working_on_the_other(two_gateways, alice, access_token, openai_channel):
    first, second = two_gateways
    token, key = make_key(alice)
    assert chat(first, key) == chat(second, key) == 200  # both have the key cached now
    api = httpx.Client(base_url=f"{first.url}/api", headers={"Authorization": f"Bearer {access_token}"})
    assert api.patch(f"/tokens/{token.pk}", json={"status": "disabled"}).status_code == 200
    assert status_within(second, key, 403, SYNC_FREQUENCY + 2) <= SYNC_FREQUENCY + 1


def test_a_deleted_key_stops_working_on_the_other_instance(two_gateways, alice, access_token, openai_channel):
    first, second = two_gateways
    token, key = make_key(alice)
    assert chat(second, key) == 200
    api = httpx.Client(base_url=f"{first.url}/api", headers={"Authorization": f"Bearer {access_token}"})
    assert api.delete(f"/tokens/{token.pk}").status_code == 204
    assert status_within(second, key, 401, SYNC_FREQUENCY + 2) <= SYNC_FREQUENCY + 1


def test_a_channel_disabled_on_one_instance_leaves_the_other_rotation(
    two_gateways, alice, access_token, openai_channel
):
    first, second = two_gateways
    _, key = make_key(alice)
    assert chat(second, key) == 200
    api = httpx.Client(base_url=f"{first.url}/api", headers={"Authorization": f"Bearer {access_token}"})
    assert api.patch(f"/channels/{openai_channel.pk}", json={"status": "disabled"}).status_code == 200
    assert status_within(second, key, 503, SYNC_FREQUENCY + 2) <= SYNC_FREQUENCY + 1


def test_a_price_raised_on_one_instance_is_charged_by_the_other(two_gateways, alice, access_token, openai_channel):
    first, second = two_gateways
    _, key = make_key(alice)
    assert chat(second, key) == 200  # its prices are loaded now
    api = httpx.Client(base_url=f"{first.url}/api", headers={"Authorization": f"Bearer {access_token}"})
    # 1,000 USD per call is more than the key holds, so the other instance refuses once it sees the price.
    assert api.patch("/pricing", json={"model_price": {"gpt-4o": 1000}}).status_code == 200
    assert status_within(second, key, 403, SYNC_FREQUENCY + 2) <= SYNC_FREQUENCY + 1
