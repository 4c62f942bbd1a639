"""An OpenAI upstream whose chat stream is long and as fast as its reader: it counts what it got to send.

Start it with tests.support.fakes.openai_upstream.start(Firehose()). A gateway that reads the upstream only as fast as
its client takes lets `sent` grow by no more than the buffers on the way while the client reads nothing.
"""

import contextlib
import json
from dataclasses import dataclass

from aiohttp import web

PIECE = "x" * 16_000


@dataclass
class Firehose:
    limit: int = 512 * 1024 * 1024  # bytes of stream at most
    sent: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        model = (await request.json())["model"]
        chunk = {"id": "chatcmpl-fire", "object": "chat.completion.chunk", "created": 1, "model": model}
        event = f"data: {json.dumps({**chunk, 'choices': [{'index': 0, 'delta': {'content': PIECE}}]})}\n\n"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        data = event.encode()
        with contextlib.suppress(ConnectionResetError):  # the gateway hung up: the test is over
            while self.sent < self.limit:
                await response.write(data)  # waits while the transport's buffer is full
                self.sent += len(data)
            await response.write(b"data: [DONE]\n\n")
        return response
