"""A relayed request leaves no reference cycles behind, so everything it made is freed by reference counting
the moment it is done. Garbage in cycles waits for the collector's full pass, which stops the whole process
(80-130 ms every few seconds at 200 concurrent streams, before httpx's response <-> stream cycle and the
handler's task <-> exception cycle were cut)."""

import asyncio
import gc

import httpx
import orjson
import pytest
from django.http import HttpRequest

from tests.support.asgi_harness import Gateway
from tests.support.relay_client import HELLO

pytestmark = pytest.mark.django_db(transaction=True)


def of_the_relay(item: object) -> bool:
    """A response, request or task of the gateway (the fake upstream runs its own event loop in a thread)."""
    if isinstance(item, asyncio.Task):
        return item.get_loop() is asyncio.get_running_loop()
    return isinstance(item, httpx.Response | HttpRequest)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_relayed_request_leaves_no_reference_cycles(alice_key, openai_channel, fake_openai, stream):
    gateway = Gateway()
    body = orjson.dumps({**HELLO, "stream": stream})
    headers = {"Authorization": f"Bearer {alice_key}", "Content-Type": "application/json"}
    await gateway.request("POST", "/v1/chat/completions", body, headers)  # caches and connections warm
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable is kept in gc.garbage to look at
    try:
        answer = await gateway.request("POST", "/v1/chat/completions", body, headers)
        gc.collect()
        left = sorted({type(item).__name__ for item in gc.garbage if of_the_relay(item)})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert answer.status == 200
    assert left == []
