"""Channel balance from OpenAI-compatible upstreams' key-usage endpoints."""

import pytest
from django.test import Client

from tests.support.factories import make_channel
from tests.support.fakes.openai_upstream import FAKE_GRANT_USD, FAKE_USED_CENTS

pytestmark = pytest.mark.django_db(transaction=True)


def api(access_token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {access_token}"})


def test_the_balance_is_the_grant_minus_the_usage(access_token, fake_openai):
    channel = make_channel(f"{fake_openai.url}/v1")
    response = api(access_token).post(f"/api/channels/{channel.pk}/balance")
    assert response.status_code == 200
    assert response.json()["balance"] == pytest.approx(FAKE_GRANT_USD - FAKE_USED_CENTS / 100)
    channel.refresh_from_db()
    assert channel.balance == pytest.approx(17.648)


def test_providers_without_a_balance_say_so(access_token, fake_openai):
    channel = make_channel(fake_openai.url, type="anthropic", models=["claude-3-5-haiku-latest"])
    response = api(access_token).post(f"/api/channels/{channel.pk}/balance")
    assert response.status_code == 502
    assert "do not report a balance" in response.json()["detail"]
