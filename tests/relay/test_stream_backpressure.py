"""Backpressure: a client that stops reading a stream makes the gateway stop reading its upstream (the
buffers between them are bounded), and a write the client has not taken within STREAMING_TIMEOUT ends the
stream, billed for what was delivered under its own rule.

Through the real server against an upstream that streams at full speed without end (faulty_upstream's
GIGANTIC mode, cut at MAX_UPSTREAM_RESPONSE_BYTES = 64 MiB); in process for the rule itself.
"""

import asyncio
import re
import socket
import time

import orjson
import pytest
from django.test import override_settings

from billing import settlement
from billing.models import Log, Reservation
from relay import tokenizer
from tests.support.asgi_harness import RoutedCall
from tests.support.factories import make_channel, make_key, wait_for
from tests.support.fakes import faulty_upstream as fake
from tests.support.fakes.faulty_upstream import FaultyUpstream
from tests.support.fakes.openai_upstream import Behaviour
from tests.support.live_server import LiveGateway, consume_logs
from tests.support.relay_client import HELLO

pytestmark = pytest.mark.django_db(transaction=True)

STALL_SECONDS = 2  # the servers' STREAMING_TIMEOUT
SILENT_CLIENTS = 5
# What five stalled streams may add to the server's memory: the text delivered into the sockets' buffers
# (a few MB each on loopback) and its count. Without backpressure each stream buffers up to 64 MiB of
# upstream answer, several times over.
RSS_BOUND = 150 * 1024 * 1024
STALLED = "client stopped reading for STREAMING_TIMEOUT"
PLENTY = 10**12  # quota: a stream that is not stopped costs millions
# granian serves from a worker process whose peak this test does not read; its backpressure is covered by
# tests/gateway_project/test_daphne_backpressure.py, which follows the worker.
SERVERS = ["uvicorn", "daphne"]


def memory(pid: int, field: str) -> int:
    """A /proc/PID/status memory figure in bytes: VmRSS now, VmHWM the peak so far."""
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(rf"{field}:\s+(\d+) kB", status.read())[1]) * 1024


def silent_stream(gateway: LiveGateway, key: str) -> socket.socket:
    """A client that asks for a stream and then reads nothing."""
    body = orjson.dumps({**HELLO, "stream": True})
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    client = socket.create_connection(("127.0.0.1", gateway.port))
    client.sendall(head.encode() + body)
    return client


def read_to_end(client: socket.socket) -> bytes:
    """What the server wrote to the socket before closing it (the client reads it only now)."""
    client.settimeout(30)
    received = []
    while chunk := client.recv(1 << 20):
        received.append(chunk)
    client.close()
    return b"".join(received)


def dechunked(raw: bytes) -> bytes:
    """The body of a chunked HTTP answer, its complete chunks only."""
    body, position, parts = raw.partition(b"\r\n\r\n")[2], 0, []
    while (line_end := body.find(b"\r\n", position)) != -1:
        size = int(body[position:line_end], 16)
        if size == 0 or line_end + 2 + size > len(body):
            break
        parts.append(body[line_end + 2 : line_end + 2 + size])
        position = line_end + 4 + size
    return b"".join(parts)


def delivered_text(events: bytes) -> str:
    """The content of the chat chunks in a stream's events."""
    chunks = [orjson.loads(event[6:]) for event in events.split(b"\n\n") if event.startswith(b"data: {")]
    return "".join(choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"])


@pytest.fixture(scope="module")
def endless_upstream() -> FaultyUpstream:
    return FaultyUpstream().start()


@pytest.mark.backend
@pytest.mark.parametrize("server", SERVERS)
def test_clients_that_stop_reading_hold_bounded_memory_and_are_billed_for_what_was_delivered(
    alice, endless_upstream, server
):
    endless_upstream.reset(fake.GIGANTIC)
    make_channel(endless_upstream.url)
    alice.quota = PLENTY
    alice.save()
    key = make_key(alice, remain_quota=PLENTY)[1]
    gateway = LiveGateway({"STREAMING_TIMEOUT": str(STALL_SECONDS), "RETRY_TIMES": "0"}, server=server)
    try:
        # A first stall loads what every later one uses (the tokenizer table counting the delivered text).
        first = silent_stream(gateway, key)
        consume_logs(1)
        read_to_end(first)
        before = memory(gateway.process.pid, "VmRSS")
        with open(f"/proc/{gateway.process.pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # VmHWM, the peak, starts again from the RSS of now
        started = time.monotonic()
        clients = [silent_stream(gateway, key) for _ in range(SILENT_CLIENTS)]
        logs = consume_logs(1 + SILENT_CLIENTS)[1:]
        ended = time.monotonic() - started
        peak = memory(gateway.process.pid, "VmHWM")
        received = [read_to_end(client) for client in clients]
    finally:
        gateway.stop()
    print(
        f"\n{server}: RSS before {before / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB with {SILENT_CLIENTS}"
        f" clients that stopped reading; all ended and billed {ended:.1f} s after they asked"
    )
    assert peak - before < RSS_BOUND
    assert all(log.content.startswith(STALLED) for log in logs), [log.content for log in logs]
    assert all(log.use_time_ms >= STALL_SECONDS * 1000 for log in logs)
    billed = sorted(log.completion_tokens for log in logs)
    got = sorted(tokenizer.count_text("gpt-4o", delivered_text(dechunked(raw))) for raw in received)
    # uvicorn waits for room in the socket before it writes, so the write it had not taken never left; a
    # server that writes first and then waits may have let that one write (one upstream read) go unbilled.
    one_write = 0 if server == "uvicorn" else tokenizer.count_text("gpt-4o", fake.CONTENT_PIECE * 16)
    assert all(0 <= seen - paid <= one_write for seen, paid in zip(got, billed, strict=True)), (got, billed)
    assert min(billed) > 0
    assert not Reservation.objects.filter(state=Reservation.State.HELD).exists()
    assert endless_upstream.open_connections == 0  # the gateway hung up on the upstream


@override_settings(STREAMING_TIMEOUT=0.5)
async def test_a_client_that_stops_reading_ends_its_stream_and_is_billed_for_what_was_delivered(
    alice_key, openai_channel, fake_openai
):
    fake_openai.script.append(Behaviour(usage=False, chunk_delay=0.1))
    headers = {"Authorization": f"Bearer {alice_key}", "Content-Type": "application/json"}
    client = RoutedCall("/v1/chat/completions", orjson.dumps({**HELLO, "stream": True}), headers)
    writes = []

    async def take_two_writes_then_none(message: dict) -> None:
        writes.append(message)
        if len(writes) > 3:  # the status and headers, two writes of events, then the buffers are full
            await asyncio.Event().wait()

    client.take = take_two_writes_then_none
    await client.run(timeout=5)
    await settlement.drain()
    log = await Log.objects.aget(type=Log.Type.CONSUME)
    assert log.content.startswith(STALLED)
    text = delivered_text(client.received)
    assert text and log.completion_tokens == tokenizer.count_text("gpt-4o", text)
    assert (await Reservation.objects.aget(request_id=log.request_id)).state == Reservation.State.SETTLED
    await wait_for(lambda: fake_openai.cancelled_streams == 1)  # the upstream was stopped
