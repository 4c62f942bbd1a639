"""A client that stops reading a stream makes the gateway stop reading the upstream, under every server.

uvicorn and granian make `send` wait while the client's socket is full; daphne alone did not, and buffered the
upstream's whole answer in memory (gateway_project/daphne_server.py makes it wait too).
"""

import json
import socket
import time

import httpx
import pytest

from billing.models import User
from tests.support.factories import make_channel, make_key
from tests.support.fakes.firehose import Firehose
from tests.support.fakes.openai_upstream import start
from tests.support.live_server import LiveGateway

pytestmark = pytest.mark.django_db(transaction=True)

SERVERS = ["daphne", "uvicorn", "granian"]
MEGABYTE = 1024**2
STREAM = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "Go on"}]}


@pytest.fixture
def firehose() -> Firehose:
    hose = Firehose()
    start(hose)
    return hose


def gateway_for(firehose: Firehose, user: User, server: str) -> tuple[LiveGateway, str]:
    make_channel(firehose.url)
    key = make_key(user)[1]
    # The upstream answer may be as long as the firehose: only backpressure bounds what is read of it.
    return LiveGateway({"MAX_UPSTREAM_RESPONSE_BYTES": str(firehose.limit * 2)}, server=server), key


def settled(read, timeout: float = 20) -> int:
    """`read()` once it has not grown for a second (or passed 256 MB)."""
    deadline = time.monotonic() + timeout
    last = read()
    while time.monotonic() < deadline:
        time.sleep(1)
        now = read()
        if now == last or now > 256 * MEGABYTE:
            return now
        last = now
    return read()


@pytest.mark.parametrize("server", SERVERS)
def test_a_client_that_stops_reading_stops_the_upstream_and_holds_memory_bounded(firehose, alice, server):
    gateway, key = gateway_for(firehose, alice, server)
    try:
        before = gateway.memory_bytes()
        body = json.dumps(STREAM).encode()
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as client:
            head = (
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            client.sendall(head.encode() + body)
            assert client.recv(65536).startswith(b"HTTP/1.1 200 ")  # ... and then the client reads no more
            sent = settled(lambda: firehose.sent)
            grown = gateway.memory_bytes() - before
    finally:
        gateway.stop()
    # What the sockets and buffers on the way hold (about 20 MB here); plain daphne read all 512 MB.
    assert sent < 64 * MEGABYTE
    assert grown < 100 * MEGABYTE  # generous: plain daphne grew by more than the stream it buffered


@pytest.mark.parametrize("server", SERVERS)
def test_a_client_that_pauses_and_reads_on_gets_the_whole_long_stream(firehose, alice, server):
    firehose.limit = 8 * MEGABYTE  # more than the buffers on the way hold: the server has to wait, then go on
    gateway, key = gateway_for(firehose, alice, server)
    try:
        received, last = 0, b""
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.stream(
            "POST", f"{gateway.url}/v1/chat/completions", json=STREAM, headers=headers, timeout=60
        ) as answer:
            assert answer.status_code == 200
            for piece in answer.iter_bytes():
                if not received:
                    settled(lambda: firehose.sent)  # the client pauses until the server has stopped
                received += len(piece)
                last = (last + piece)[-64:]
    finally:
        gateway.stop()
    assert received >= firehose.limit
    assert last.endswith(b"data: [DONE]\n\n")
