"""Drive the ASGI application directly, to do what HTTP clients in tests cannot (disconnect mid-stream)."""

import asyncio

from django.core.asgi import get_asgi_application


class StreamingCall:
    """One POST whose client hangs up after `disconnect_after` body chunks."""

    def __init__(self, path: str, body: bytes, headers: dict[str, str], disconnect_after: int) -> None:
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.body = body
        self.disconnect_after = disconnect_after
        self.chunks: list[bytes] = []
        self.status: int | None = None
        self._hang_up = asyncio.Event()
        self._body_sent = False

    async def receive(self) -> dict:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self._hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body" and message.get("body"):
            self.chunks.append(message["body"])
            if len(self.chunks) >= self.disconnect_after:
                self._hang_up.set()

    async def run(self) -> None:
        await get_asgi_application()(self.scope, self.receive, self.send)
