"""daphne with two gaps closed: `python -m gateway_project.daphne_server [daphne's own arguments]`.

1. daphne (twisted) reads a whole request body into memory or a temporary file before the application sees
   any of it, then queues all of it at once: a 1 GB body costs a gigabyte of memory before the gateway can
   refuse it. Here the body is counted while twisted parses it, and a body over its path's limit
   (gateway_project.asgi_handlers.body_limit) gets the same 413 as under uvicorn, at once from Content-Length or
   as soon as the chunks pass the limit; the connection then closes without reading the rest.
2. daphne's `send` writes into twisted's transport, which buffers without bound, and never waits: a client
   that stops reading a stream made the gateway keep reading the upstream into memory. Here `send` of a body
   chunk waits while the transport holds more than twisted's 64 KiB (the transport pauses its producer,
   which this registers), as uvicorn's does.
3. An application that returns without finishing a response it started (the relay ends the stream of a client
   that stopped reading for STREAMING_TIMEOUT) left daphne's connection open for ever, the client waiting on
   it. Here the connection is closed, as uvicorn closes it.

The overrides lean on daphne 4.2.3 and Twisted 26.10 (requirements.txt): tests/gateway_project/test_body_limits.py and
tests/gateway_project/test_daphne_backpressure.py run the real server and fail if an upgrade breaks them.
"""

import asyncio
import os
from urllib.parse import unquote

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")

import django  # noqa: E402

django.setup(set_prefix=False)

import daphne.server  # noqa: E402
from daphne.cli import CommandLineInterface  # noqa: E402
from daphne.http_protocol import HTTPFactory, WebRequest  # noqa: E402
from twisted.internet.interfaces import IPushProducer  # noqa: E402
from zope.interface import implementer  # noqa: E402

from gateway_project.asgi_handlers import body_limit, cors_headers, is_relay_path, refusal  # noqa: E402


@implementer(IPushProducer)
class SendWindow:
    """Open while the connection's transport can take more: twisted pauses this producer when its write buffer
    is full and resumes it once the buffer has drained."""

    def __init__(self, paused: bool) -> None:
        self.open = asyncio.Event()
        if not paused:
            self.open.set()

    def pauseProducing(self) -> None:
        self.open.clear()

    def resumeProducing(self) -> None:
        self.open.set()

    def stopProducing(self) -> None:  # the connection is gone: nothing is left to wait for
        self.open.set()


class GatewayRequest(WebRequest):
    refused = False
    window: SendWindow | None = None

    def gotLength(self, length: int | None) -> None:
        # Twisted calls this once the headers are in; the request learns its path only after the body
        # (requestReceived), so take it from the channel, decoded as daphne decodes it for the scope.
        self.limit_path = unquote(self.channel._path.split(b"?", 1)[0].decode("latin-1"))
        self.body_limit = body_limit(self.limit_path)
        self.body_received = 0
        if length is not None and length > self.body_limit:
            self.refuse()
        else:
            super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:  # what was read with the chunk that passed the limit
            return
        self.body_received += len(data)
        if self.body_received > self.body_limit:
            self.refuse()
        else:
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        # A refused body can still end within the data twisted had already read: the application never runs.
        if not self.refused:
            super().requestReceived(command, path, version)

    def refuse(self) -> None:
        self.refused = True
        # Twisted answers "100 Continue" after gotLength to a client that expects it; the 413 is the answer.
        self.requestHeaders.removeHeader(b"Expect")
        headers, body = refusal(self.limit_path)
        if is_relay_path(self.limit_path):  # the application, whose RelayCors would add them, never runs
            headers += cors_headers(self.requestHeaders.getRawHeaders(b"origin", [None])[0])
        self.channel.writeHeaders(b"HTTP/1.1", b"413", b"Content Too Large", headers)
        self.channel.write(body)
        self.channel.loseConnection()

    def handle_reply(self, message: dict) -> None:
        if message["type"] == "http.response.start" and self.window is None and not self.finished and self.channel:
            # The transport may already be full from an earlier answer on this connection.
            self.window = SendWindow(paused=self.channel._waitingForTransport)
            self.registerProducer(self.window, True)
        super().handle_reply(message)

    def finish(self) -> None:
        if self.window is not None:
            self.unregisterProducer()  # twisted wants a finished request's producer gone
            self.window.open.set()
        super().finish()

    def connectionLost(self, reason) -> None:
        if self.window is not None:  # a send waiting for a client that is gone returns (and sends nothing)
            self.window.open.set()
        super().connectionLost(reason)


class GatewayHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = GatewayRequest
        return protocol


class GatewayServer(daphne.server.Server):
    def run(self) -> None:
        # Server.run() builds its factory from this module-level name; daphne has no other hook for it.
        daphne.server.HTTPFactory = GatewayHTTPFactory
        super().run()

    def create_application(self, protocol, scope):
        queue = super().create_application(protocol, scope)
        running = self.connections.get(protocol, {}).get("application_instance")
        if running is not None:
            running.add_done_callback(lambda _: drop_if_unfinished(protocol))
        return queue

    async def handle_reply(self, protocol, message: dict) -> None:
        await super().handle_reply(protocol, message)
        window = getattr(protocol, "window", None)  # None for a websocket (the gateway serves none)
        if window is not None:
            await window.open.wait()


def drop_if_unfinished(protocol) -> None:
    """Close once what is buffered has gone out (at most twisted's 64 KiB), as uvicorn closes its transport."""
    if protocol._response_started and not protocol.finished and protocol.channel is not None:
        protocol.channel.loseConnection()


class GatewayCommandLine(CommandLineInterface):
    server_class = GatewayServer


if __name__ == "__main__":
    GatewayCommandLine.entrypoint()
