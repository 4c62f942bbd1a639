"""End to end: a channel of several keys, set up through the management API of the real server, called with the
official SDK; the fake upstream accepts some keys and answers 401 invalid_api_key to the revoked ones."""

from collections import Counter
from collections.abc import Iterator

import httpx
import openai
import pytest
from django.conf import settings

from tests.support.live_server import LiveGateway

# Not database-sensitive (the storage is tested on every database in tests/channels_app); the tests that
# depend on the cache run on the Redis legs too.
pytestmark = pytest.mark.django_db(transaction=True)

KEYS = ["sk-good-key-one", "sk-good-key-two", "sk-revoked-three"]
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def gateway(transactional_db) -> Iterator[LiveGateway]:
    server = LiveGateway()
    yield server
    server.stop()


class World:
    """The operator's management API and an app's SDK client, on one gateway."""

    def __init__(self, gateway: LiveGateway, access_token: str) -> None:
        self.api = httpx.Client(base_url=f"{gateway.url}/api", headers={"Authorization": f"Bearer {access_token}"})
        user = self.api.post("/users", json={"username": "carol", "password": "carol-pass-123"}).json()
        assert self.api.post(f"/users/{user['id']}/quota", json={"delta": 10_000_000, "reason": "t"}).is_success
        key = self.api.post("/tokens", json={"user_id": user["id"], "name": "sdk", "remain_quota": 5_000_000})
        self.key = key.json()["key"]

    def channel(self, upstream_url: str, keys: str, mode: str = "random") -> int:
        body = {"name": "pool", "key": keys, "key_mode": mode, "base_url": upstream_url, "models": ["gpt-4o"]}
        created = self.api.post("/channels", json=body)
        assert created.status_code == 201, created.text
        return created.json()["id"]

    def client(self, gateway: LiveGateway) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=self.key, max_retries=0)

    def keys(self, channel_id: int) -> list[dict]:
        return self.api.get(f"/channels/{channel_id}").json()["keys"]


def used_keys(fake_openai) -> Counter:
    return Counter(request.headers["Authorization"].removeprefix("Bearer ") for request in fake_openai.requests)


def chat(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)


def test_a_revoked_key_is_disabled_with_its_reason_and_the_channel_keeps_serving(gateway, access_token, fake_openai):
    fake_openai.revoked.add(KEYS[2])
    world = World(gateway, access_token)
    channel_id = world.channel(fake_openai.url, "\n".join(KEYS), mode="polling")
    client = world.client(gateway)
    for _ in range(6):
        chat(client)  # every call answers: the one sent with the revoked key is retried with another key

    assert used_keys(fake_openai)[KEYS[2]] == 1  # once, then out of rotation
    shown = world.api.get(f"/channels/{channel_id}").json()
    assert shown["status"] == "enabled"
    revoked = shown["keys"][2]
    assert revoked["status"] == "auto_disabled" and revoked["key_hint"] == "sk-...hree"
    assert "401" in revoked["status_reason"] and "Incorrect API key" in revoked["status_reason"]
    assert [key["status"] for key in shown["keys"][:2]] == ["enabled", "enabled"]
    assert KEYS[2] not in str(shown)

    fake_openai.revoked.clear()  # the operator renewed it upstream: the channel test brings it back
    tested = world.api.post(f"/channels/{channel_id}/test").json()
    assert tested["success"] and [key["success"] for key in tested["keys"]] == [True, True, True]
    assert [key["status"] for key in world.keys(channel_id)] == ["enabled"] * 3


@pytest.mark.cache
@pytest.mark.parametrize("calls", [30])
def test_polling_spreads_calls_evenly_across_keys(gateway, access_token, fake_openai, calls):
    world = World(gateway, access_token)
    world.channel(fake_openai.url, "\n".join(KEYS[:2] + ["sk-good-key-three"]), mode="polling")
    client = world.client(gateway)
    for _ in range(calls):
        chat(client)
    assert sorted(used_keys(fake_openai).values()) == [calls // 3] * 3


@pytest.mark.cache
@pytest.mark.skipif(not settings.REDIS_CONN_STRING, reason="instances share the turn through Redis")
def test_polling_takes_turns_across_instances_through_redis(gateway, access_token, fake_openai):
    world = World(gateway, access_token)
    world.channel(fake_openai.url, '["sk-good-key-one", "sk-good-key-two", "sk-good-key-three"]', mode="polling")
    other = LiveGateway()
    try:
        clients = [world.client(gateway), world.client(other)]
        for number in range(30):
            # 20 calls on one, 10 on the other: a turn counted per process would give 11, 10, 9
            chat(clients[0 if number % 3 else 1])
    finally:
        other.stop()
    assert sorted(used_keys(fake_openai).values()) == [10, 10, 10]


def test_random_uses_every_key(gateway, access_token, fake_openai):
    world = World(gateway, access_token)
    world.channel(fake_openai.url, "\n".join(KEYS[:2] + ["sk-good-key-three"]))
    client = world.client(gateway)
    for _ in range(30):  # a key left out of 30 random picks: 3 * (2/3)**30, about 1 in 60,000
        chat(client)
    assert len(used_keys(fake_openai)) == 3


def test_when_every_key_is_dead_the_channel_is_auto_disabled_and_a_test_brings_it_back(
    gateway, access_token, fake_openai
):
    fake_openai.revoked.update(KEYS)
    world = World(gateway, access_token)
    channel_id = world.channel(fake_openai.url, "\n".join(KEYS))
    with pytest.raises(openai.AuthenticationError):
        chat(world.client(gateway))  # each key tried once (RETRY_TIMES 3), each disabled
    assert sorted(used_keys(fake_openai).values()) == [1, 1, 1]
    shown = world.api.get(f"/channels/{channel_id}").json()
    assert shown["status"] == "auto_disabled" and shown["status_reason"].startswith("every key is disabled")
    assert [key["status"] for key in shown["keys"]] == ["auto_disabled"] * 3

    fake_openai.revoked.discard(KEYS[1])
    assert world.api.post(f"/channels/{channel_id}/test").json()["success"]
    shown = world.api.get(f"/channels/{channel_id}").json()
    assert shown["status"] == "enabled"
    assert [key["status"] for key in shown["keys"]] == ["auto_disabled", "enabled", "auto_disabled"]
    fake_openai.requests.clear()
    chat(world.client(gateway))
    assert used_keys(fake_openai) == {KEYS[1]: 1}
