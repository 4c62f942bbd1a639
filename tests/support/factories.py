"""Rows the tests build: users' keys, channels, the admin's channel form, and waiting for the database."""

import asyncio

from billing.models import ApiKey, User
from channels_app.models import Channel
from gateway_project.db import run_db

ALICE_QUOTA = 10_000_000


def make_key(user: User, **fields) -> tuple[ApiKey, str]:
    fields.setdefault("remain_quota", 5_000_000)
    token = ApiKey(user=user, name=fields.pop("name", "app"), **fields)
    plain = token.set_key()
    token.save()
    return token, plain


def make_channel(base_url: str, models: list[str] | None = None, key: str = "sk-upstream-secret", **fields) -> Channel:
    channel = Channel(
        name=fields.pop("name", "fake"),
        type=fields.pop("type", "openai"),
        base_url=base_url,
        models=models or ["gpt-4o"],
        **fields,
    )
    channel.key = key
    channel.save()
    return channel


# A complete add form of Django admin's channel page, without the key.
CHANNEL_FORM = {
    "name": "admin-made",
    "type": "openai",
    "base_url": "",
    "models": '["gpt-4o"]',
    "model_mapping": "{}",
    "status_code_mapping": "{}",
    "groups": '["default"]',
    "priority": 0,
    "weight": 1,
    "status": "enabled",
    "auto_ban": "on",
    "test_model": "",
    "config": "{}",
    "key_mode": "random",
}


async def wait_for(predicate, timeout: float = 5.0) -> None:
    """Poll a synchronous predicate (run in the DB thread pool) until it holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await run_db(predicate):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
