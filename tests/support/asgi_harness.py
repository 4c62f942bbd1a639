"""Drive the ASGI application directly, to do what HTTP clients in tests cannot (disconnect mid-stream, send
any bytes in a header) and fast."""

import asyncio
from dataclasses import dataclass

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

from gateway_project.asgi_handlers import BodyLimit, PathRouter, RelayCors, RelayHandler


def http_scope(method: str, path: str, headers: dict[str, str], query: str = "") -> dict:
    """An HTTP request's ASGI scope; header values are sent as latin-1, so a test can put any byte in them."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


class RoutedCall:
    """One POST through the production routing (RelayHandler, as behind a real server) whose client hangs up
    when `hang_up` is set, having taken every write until then; `take` decides how its socket takes a write
    (a test may make it stop taking them)."""

    def __init__(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        self.scope = http_scope("POST", path, headers)
        self.body = body
        self.body_read = False
        self.hang_up = asyncio.Event()
        self.received = b""

    async def receive(self) -> dict:
        if not self.body_read:
            self.body_read = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        await self.take(message)  # as uvicorn does: wait for room in the socket, then write
        self.received += message.get("body", b"")

    async def take(self, message: dict) -> None:
        """Wait until the client has taken the write; one that reads everything takes it at once."""

    async def run(self, timeout: float = 20) -> None:
        await asyncio.wait_for(Gateway().app(self.scope, self.receive, self.send), timeout)


class StreamingCall(RoutedCall):
    """One POST to Django's own ASGI handler whose client hangs up after `disconnect_after` body chunks."""

    def __init__(self, path: str, body: bytes, headers: dict[str, str], disconnect_after: int) -> None:
        super().__init__(path, body, headers)
        self.disconnect_after = disconnect_after
        self.chunks: list[bytes] = []

    async def take(self, message: dict) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            self.chunks.append(message["body"])
            if len(self.chunks) >= self.disconnect_after:
                self.hang_up.set()

    async def run(self) -> None:
        await get_asgi_application()(self.scope, self.receive, self.send)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Gateway:
    """The production routing (CORS and body limits, relay paths with no middleware, the rest through Django's),
    called in process.

    Header values are sent as latin-1, so a test can put any byte in them."""

    def __init__(self) -> None:
        self.app = RelayCors(BodyLimit(PathRouter(relay=RelayHandler(), site=ASGIHandler())))

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
        path, _, query = path.partition("?")
        scope = http_scope(method, path, headers or {}, query)
        answered = asyncio.Event()
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        start: dict = {}
        chunks: list[bytes] = []

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await answered.wait()  # Django listens for a disconnect while it answers: the client stays
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    answered.set()

        await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start.get("headers", [])}
        return Answer(start["status"], headers, b"".join(chunks))
