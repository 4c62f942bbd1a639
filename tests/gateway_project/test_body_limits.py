"""Request bodies over their path's limit are refused as they arrive, under every supported server.

A declared length over the limit gets its 413 before the client sends any of the body; a chunked body gets it
as soon as it passes the limit, without the server reading (or holding) the rest. Raw sockets, because an HTTP
client would not show what the server answered before the body was sent.
"""

import contextlib
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
import pytest

from tests.support.factories import make_channel, make_key
from tests.support.live_server import LiveGateway

SERVERS = ["daphne", "uvicorn", "granian"]
RELAY_LIMIT = 256 * 1024
SITE_LIMIT = 16 * 1024
LIMITS = {"RELAY_MAX_BODY_BYTES": str(RELAY_LIMIT), "SITE_MAX_BODY_BYTES": str(SITE_LIMIT)}
PIECE = 64 * 1024
CHAT = "/v1/chat/completions"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes


def exchange(port: int, head: str, body: Iterable[bytes] = (), timeout: float = 10) -> tuple[Answer, int]:
    """Send a request head, then `body` for as long as the server takes it; read the answer until the server
    closes the connection. Returns the answer and how many body bytes were sent."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        client.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        try:
            for piece in body:
                client.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused: the answer is waiting
        raw = b""
        # A server that closes with some of the body unread resets the connection once its answer is out.
        with contextlib.suppress(ConnectionResetError):
            while part := client.recv(65536):
                raw += part
    head_part, _, content = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head_part.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return Answer(int(status_line.split()[1]), headers, content, raw), sent


def chunked(total: int, piece: int = PIECE) -> Iterable[bytes]:
    """`total` body bytes in chunked transfer coding, then the last chunk."""
    for _ in range(total // piece):
        yield b"%x\r\n" % piece + b"x" * piece + b"\r\n"
    yield b"0\r\n\r\n"


def post_head(path: str, *headers: str) -> str:
    head = [f"POST {path} HTTP/1.1", "Host: gateway", "Connection: close", "Content-Type: application/json", *headers]
    return "\n".join([*head, ""])


@pytest.fixture(scope="module", params=SERVERS)
def gateway(request, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        server = LiveGateway(LIMITS, server=request.param)
    yield server
    server.stop()


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(gateway):
    head = post_head(CHAT, f"Content-Length: {RELAY_LIMIT + 1}", "Expect: 100-continue")
    answer, _ = exchange(gateway.port, head)  # sends no body at all; the server must answer and close
    assert answer.raw.startswith(b"HTTP/1.1 413 ")  # the 413 alone: no "100 Continue" before it
    assert answer.headers["connection"] == "close"
    assert answer.headers["x-request-id"]
    assert json.loads(answer.body)["error"] == {
        "message": f"request body is larger than {RELAY_LIMIT} bytes",
        "type": "invalid_request_error",
        "param": None,
        "code": "body_too_large",
    }


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(gateway):
    def passing_the_limit() -> Iterable[bytes]:  # ... and then nothing: no last chunk, the client waits
        yield from list(chunked(RELAY_LIMIT + PIECE))[:-1]

    answer, _ = exchange(gateway.port, post_head(CHAT, "Transfer-Encoding: chunked"), passing_the_limit())
    assert answer.status == 413
    assert json.loads(answer.body)["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    "path, content_type, body",
    [
        ("/api/me", "application/json", f'{{"detail":"request body is larger than {SITE_LIMIT} bytes"}}'),
        ("/admin/login/", "text/plain; charset=utf-8", f"request body is larger than {SITE_LIMIT} bytes"),
        ("/accounts/login/", "text/plain; charset=utf-8", f"request body is larger than {SITE_LIMIT} bytes"),
    ],
)
def test_a_site_path_refuses_at_its_smaller_limit(gateway, path, content_type, body):
    over_site_limit = SITE_LIMIT + 1
    answer, _ = exchange(gateway.port, post_head(path, f"Content-Length: {over_site_limit}"))
    assert (answer.status, answer.headers["content-type"], answer.body.decode()) == (413, content_type, body)
    under_relay_limit = b"x" * over_site_limit
    relay, _ = exchange(gateway.port, post_head(CHAT, f"Content-Length: {over_site_limit}"), [under_relay_limit])
    assert relay.status == 401  # read whole, then refused for its (missing) key


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("server", SERVERS)
def test_bodies_under_the_limit_still_work(fake_openai, alice, access_token, server):
    make_channel(fake_openai.url, models=["gpt-4o", "whisper-1"])
    key = make_key(alice)[1]
    gateway = LiveGateway(LIMITS, server=server)
    try:
        relay = httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        prompt = "word " * (RELAY_LIMIT // 6)
        chat = relay.post(CHAT, json={"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]})
        assert chat.status_code == 200, chat.text
        audio = {"file": ("a.mp3", b"\xff" * (RELAY_LIMIT // 2), "audio/mpeg")}
        transcription = relay.post("/v1/audio/transcriptions", data={"model": "whisper-1"}, files=audio)
        assert transcription.status_code == 200, transcription.text
        near_site_limit = b'{"key": "no-such-code"' + b" " * (SITE_LIMIT - 100) + b"}"
        api = httpx.post(
            f"{gateway.url}/api/redeem",
            content=near_site_limit,
            headers={"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"},
        )
        assert (api.status_code, api.json()) == (404, {"detail": "no such redemption code"})
    finally:
        gateway.stop()


GIGABYTE = 1024**3
MEGABYTE = 1024**2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("server", SERVERS)
def test_an_unauthenticated_gigabyte_leaves_the_server_memory_where_it_was(server):
    gateway = LiveGateway(server=server)  # the default limit: 32 MiB
    try:
        before = gateway.memory_bytes()
        answer, sent = exchange(
            gateway.port, post_head(CHAT, "Transfer-Encoding: chunked"), chunked(GIGABYTE, MEGABYTE)
        )
        grown = gateway.memory_bytes() - before
    finally:
        gateway.stop()
    assert answer.status == 413
    assert sent < 64 * MEGABYTE  # the limit, plus what the sockets on the way had room for
    # Generous: the process grows by a few MB here; plain daphne held the whole gigabyte.
    assert grown < 100 * MEGABYTE
