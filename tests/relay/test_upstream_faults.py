"""Upstream and client faults through the real server (daphne), against a fake upstream that misbehaves at
the byte level (tests/support/fakes/faulty_upstream.py).

The gateway runs with small timeouts and a small response cap. Every fault ends within BOUND seconds in
one of two ways: a clear OpenAI-shaped error, nothing charged and the reservation released; or a truncated
stream billed for what was delivered. Afterwards the gateway holds no connection to the fake upstream and
no more file descriptors than before the fault.
"""

import asyncio
import time
from dataclasses import dataclass

import httpx
import orjson
import pytest

from billing.models import Log, Reservation, User
from relay import sse
from relay.tokenizer import count_text
from tests.support.factories import ALICE_QUOTA, make_channel, make_key
from tests.support.fakes import faulty_upstream as fake
from tests.support.fakes.faulty_upstream import FaultyUpstream
from tests.support.live_server import LiveGateway, wait_until
from tests.support.relay_client import HELLO

pytestmark = pytest.mark.django_db(transaction=True)

CAP = 2 * 1024 * 1024
GATEWAY_ENV = {
    "STREAMING_TIMEOUT": "1",
    "RELAY_TIMEOUT": "2",
    "MAX_UPSTREAM_RESPONSE_BYTES": str(CAP),
    "RETRY_TIMES": "0",
}
BOUND = 30  # seconds: a call or clean-up that takes longer than this has hung
FD_SLACK = 4  # descriptors the gateway may open meanwhile for reasons of its own (a database thread)


@pytest.fixture(scope="module")
def upstream() -> FaultyUpstream:
    return FaultyUpstream().start()


@pytest.fixture(scope="module")
def gateway(django_db_setup) -> LiveGateway:
    server = LiveGateway(GATEWAY_ENV)
    yield server
    server.stop()


@dataclass
class World:
    gateway: LiveGateway
    upstream: FaultyUpstream
    key: str
    fds: int  # the gateway's open descriptors after a warm-up


@pytest.fixture
def world(gateway: LiveGateway, upstream: FaultyUpstream, alice) -> World:
    upstream.reset()
    make_channel(upstream.url)  # until the gateway reloads its channels it may pick the last test's: the same fake
    _, key = make_key(alice)
    headers = {"Authorization": f"Bearer {key}"}

    def channel_seen() -> bool:
        return "gpt-4o" in httpx.get(f"{gateway.url}/v1/models", headers=headers).text

    def warm_up_closed() -> bool:
        return not (upstream.open_connections or gateway.connections_to(upstream.port))

    wait_until(channel_seen, BOUND, "the gateway never saw the channel")
    for stream in (False, True):  # open what a normal call opens (database connections, the client pool)
        answer = httpx.post(f"{gateway.url}/v1/chat/completions", json={**HELLO, "stream": stream}, headers=headers)
        assert answer.status_code == 200, answer.text
    wait_until(warm_up_closed, BOUND, "warm-up connections were never closed")
    return World(gateway, upstream, key, gateway.open_fds())


def post_chat(client: httpx.AsyncClient, world: World, stream: bool):
    return client.stream(
        "POST",
        f"{world.gateway.url}/v1/chat/completions",
        json={**HELLO, "stream": stream},
        headers={"Authorization": f"Bearer {world.key}"},
    )


async def chat(world: World, stream: bool) -> tuple[httpx.Response, bytes]:
    async def call() -> tuple[httpx.Response, bytes]:
        async with httpx.AsyncClient(timeout=BOUND) as client, post_chat(client, world, stream) as response:
            return response, b"".join([chunk async for chunk in response.aiter_bytes()])

    return await asyncio.wait_for(call(), BOUND)


async def quota_left() -> int:
    return (await User.objects.aget(username="alice")).quota


async def poll(predicate, what: str, timeout: float = BOUND) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def let_go(world: World) -> None:
    """The gateway closed every connection to the fake upstream and is back to its descriptors."""

    async def released() -> bool:
        gateway, upstream = world.gateway, world.upstream
        return (
            upstream.open_connections == 0
            and gateway.connections_to(upstream.port) == 0
            and gateway.open_fds() <= world.fds + FD_SLACK
        )

    await poll(released, f"connections or descriptors left open (baseline {world.fds} fds)")


def events(body: bytes) -> list[bytes]:
    assert body.endswith(b"\n\n"), body[-200:]
    frames = body[:-2].split(b"\n\n")
    assert all(frame.startswith(b"data: ") for frame in frames), body[:500]
    return [frame[6:] for frame in frames]


def delivered_text(payloads: list[bytes]) -> str:
    chunks = [orjson.loads(payload) for payload in payloads if payload != b"[DONE]"]
    return "".join(choice["delta"].get("content") or "" for chunk in chunks for choice in chunk.get("choices") or ())


async def consume_log(request_id: str) -> Log:
    async def settled() -> bool:
        return await Log.objects.filter(request_id=request_id, type="consume").aexists()

    await poll(settled, "the stream was never settled")
    return await Log.objects.aget(request_id=request_id, type="consume")


ERRORS = [
    # mode, stream, status, words of the message
    (fake.HANG_BEFORE_HEADERS, False, 504, "did not answer in time"),
    (fake.HANG_BEFORE_HEADERS, True, 504, "did not answer in time"),
    (fake.SLOWLORIS_HEADERS, False, 504, "did not answer in time"),
    (fake.SLOWLORIS_HEADERS, True, 504, "did not answer in time"),
    (fake.HANG_MID_STREAM, False, 504, "did not finish its answer in time"),
    (fake.CLOSE_MID_STREAM, False, 502, "while reading the answer"),
    (fake.SLOWLORIS, False, 504, "did not finish its answer in time"),
    (fake.GIGANTIC, False, 502, "MAX_UPSTREAM_RESPONSE_BYTES"),
    (fake.INVALID_JSON, False, 502, "invalid JSON"),
    (fake.INVALID_JSON, True, 502, "invalid JSON"),
    (fake.ERROR_BODY, False, 502, "The server had an error"),
    (fake.ERROR_BODY, True, 502, "The server had an error"),
    (fake.ERROR_BODY_PRETTY, False, 502, "The server had an error"),
    (fake.ERROR_BODY_PRETTY, True, 502, "without sending any event"),
    (fake.SLOWLORIS, True, 504, "no data within STREAMING_TIMEOUT"),
]


@pytest.mark.parametrize(
    "mode, stream, status, message", ERRORS, ids=[f"{m}-{'stream' if s else 'whole'}" for m, s, *_ in ERRORS]
)
async def test_a_fault_before_the_first_byte_is_a_clear_error_and_charges_nothing(world, mode, stream, status, message):
    world.upstream.reset(mode, chunks=0)
    response, body = await chat(world, stream)
    assert response.status_code == status, body[:500]
    error = orjson.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert message in error["message"]
    request_id = response.headers["X-Request-Id"]
    assert (await Reservation.objects.aget(request_id=request_id)).state == "released"
    assert not await Log.objects.filter(request_id=request_id, type="consume").aexists()
    assert await quota_left() == await warmed_up_quota()
    await let_go(world)


async def warmed_up_quota() -> int:
    """Alice's quota after the warm-up calls were billed."""
    spent = sum([log.quota async for log in Log.objects.filter(type="consume")])
    return ALICE_QUOTA - spent


TRUNCATED = [
    # mode, events before the fault, rule, words of the error event (None: no error event)
    (fake.HANG_MID_STREAM, 3, "upstream idle longer than STREAMING_TIMEOUT", None),
    (fake.CLOSE_MID_STREAM, 3, "upstream failed mid-stream", "upstream connection lost"),
    (fake.GIGANTIC, 0, "upstream failed mid-stream", "larger than MAX_UPSTREAM_RESPONSE_BYTES"),
]


@pytest.mark.parametrize("mode, chunks, rule, error", TRUNCATED, ids=[t[0] for t in TRUNCATED])
async def test_a_fault_mid_stream_truncates_it_and_bills_what_was_delivered(world, mode, chunks, rule, error):
    world.upstream.reset(mode, chunks=chunks)
    response, body = await chat(world, stream=True)
    assert response.status_code == 200
    assert len(body) < 2 * CAP  # an endless upstream is cut at the cap
    payloads = events(body)
    assert payloads[-1] == b"[DONE]"
    if error:
        assert error in orjson.loads(payloads[-2])["error"]["message"]
        assert orjson.loads(payloads[-2])["error"]["code"] == "stream_interrupted"
    text = delivered_text(payloads)
    assert text
    log = await consume_log(response.headers["X-Request-Id"])
    assert log.content.startswith(rule)
    assert log.completion_tokens == count_text("gpt-4o", text)
    assert await quota_left() == await warmed_up_quota()  # charged exactly the logged cost
    await let_go(world)  # for a silent or endless upstream: the gateway hung up on it


async def test_a_client_hanging_up_mid_stream_stops_the_upstream_and_is_billed_for_what_it_got(world):
    world.upstream.reset(fake.OK, interval=0.3)
    received: list[bytes] = []

    async def read_three_events() -> str:
        async with httpx.AsyncClient(timeout=BOUND) as client, post_chat(client, world, True) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    received.append(line[6:].encode())
                if len(received) == 3:  # the role chunk and two words
                    return response.headers["X-Request-Id"]
        raise AssertionError("the stream ended before the client hung up")

    request_id = await asyncio.wait_for(read_three_events(), BOUND)
    log = await consume_log(request_id)
    assert log.content.startswith("client disconnected")
    seen = count_text("gpt-4o", delivered_text(received))
    assert seen <= log.completion_tokens < 6  # what reached the client's socket, not the whole answer
    await let_go(world)
    assert world.upstream.hung_up == 1  # the gateway stopped the upstream before it had finished


async def hang_up_before_the_answer(world: World, stream: bool) -> str:
    """The client gives up while the gateway waits for the upstream; the request's id."""

    async def called() -> bool:
        return bool(world.upstream.requests)

    async def call_and_hang_up() -> None:
        async with httpx.AsyncClient(timeout=BOUND) as client:
            call = asyncio.create_task(post_chat(client, world, stream).__aenter__())
            await poll(called, "the upstream was never called")
            call.cancel()

    await asyncio.wait_for(call_and_hang_up(), BOUND)
    return await Reservation.objects.order_by("-id").values_list("request_id", flat=True).afirst()


@pytest.mark.parametrize(
    "mode, stream", [(fake.HANG_BEFORE_HEADERS, False), (fake.HANG_MID_STREAM, True)], ids=["headers", "first-event"]
)
async def test_a_client_hanging_up_before_the_first_byte_makes_the_gateway_hang_up_too(world, mode, stream):
    world.upstream.reset(mode, chunks=0)
    request_id = await hang_up_before_the_answer(world, stream)
    await let_go(world)
    assert world.upstream.hung_up == 1
    assert not await Log.objects.filter(request_id=request_id).aexists()  # no timeout: it saw the client go


async def test_a_client_hanging_up_before_the_first_byte_gets_its_reservation_back(world):
    world.upstream.reset(fake.HANG_BEFORE_HEADERS)
    request_id = await hang_up_before_the_answer(world, stream=False)
    await let_go(world)

    async def released() -> bool:
        return not await Reservation.objects.filter(request_id=request_id, state="held").aexists()

    # 5 s: the reconciler would only release it after RESERVATION_STALE_SECONDS
    await poll(released, "the reservation is still held", timeout=5)
    assert (await Reservation.objects.aget(request_id=request_id)).state == "released"


async def test_an_event_trickled_byte_by_byte_is_parsed_without_copying_it_over_and_over():
    line = b"data: " + orjson.dumps({"content": "a" * 1_000_000}) + b"\n\n"

    async def trickled():
        for start in range(len(line)):
            if start % 1000 == 0:
                await asyncio.sleep(0)  # let the bound below interrupt a parser that copies the line each time
            yield line[start : start + 1]

    async def parse() -> list[bytes]:
        return [payload async for payloads in sse.data_payloads(trickled()) for payload in payloads]

    assert await asyncio.wait_for(parse(), BOUND) == [line[6:-2]]
