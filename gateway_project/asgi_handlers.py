"""The ASGI handlers gateway_project.asgi puts together: relay paths skip Django's middleware and request
signals, bodies over their path's limit are refused as they arrive, and shutdown settles what is pending.

The relay authenticates by API key and answers JSON or event streams: sessions, CSRF, auth and
messages middleware add nothing there, yet each costs a thread hop per request under ASGI.
"""

import asyncio
import contextlib
import uuid

import orjson
from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

from billing import settlement
from gateway_project.db import site_executor
from relay.errors import body_too_large
from relay.streaming import RelayedStream

RELAY_PREFIXES = ("/v1/", "/v1beta/", "/dashboard/", "/mj/", "/mj-", "/suno/")
RELAY_URLCONF = "gateway_project.relay_urls"
SHUTDOWN_SETTLE_SECONDS = 10


class RelayHandler(ASGIHandler):
    """Django's ASGI handler with an empty middleware chain and without request_started/finished.

    Django sends those signals through sync_to_async inside a ThreadSensitiveContext, which starts and
    joins a thread for every request. Their receivers tidy the calling thread's database connections;
    relay views reach the database only through gateway_project.db's pool, which tidies its own.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list = []
        self._template_response_middleware: list = []
        self._exception_middleware: list = []
        self._middleware_chain = convert_exception_to_response(
            self._get_response_async if is_async else self._get_response
        )

    async def __call__(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        with body_file:
            request, refused = self.create_request(scope, body_file)
            if request is None:
                await self.send_response(with_request_id(refused), send)
                return
            request.urlconf = RELAY_URLCONF
            await self.serve_until_disconnect(request, receive, send)

    async def serve_until_disconnect(self, request, receive, send) -> None:
        """Serve the request; a client that hangs up cancels it (a stream then bills what was sent), and so
        does one that stops reading (TimedSend)."""
        serving = asyncio.create_task(self.serve(request, send))
        watching = asyncio.create_task(self.listen_for_disconnect(receive))
        await asyncio.wait((serving, watching), return_when=asyncio.FIRST_COMPLETED)
        watching.cancel()
        serving.cancel()
        await asyncio.wait((serving, watching))
        # Read the outcomes without raising them here: a raised exception's traceback would hold this frame,
        # which holds the task, which holds the exception -- a cycle per request for the collector to find.
        for task in (watching, serving):
            failure = None if task.cancelled() else task.exception()
            if failure is not None and not isinstance(failure, RequestAborted):
                raise failure

    async def serve(self, request, send) -> None:
        response = with_request_id(await self.run_get_response(request))
        timed = TimedSend(send, response)
        try:
            await self.send_response(response, timed)
        finally:
            timed.stop()
            response.close()


class TimedSend:
    """The server's `send` for one response, timed. A write the client has not taken within STREAMING_TIMEOUT
    (it stopped reading: the server's `send` waits while the socket's buffers are full) ends the response:
    a relayed stream is told so (and bills what was delivered), and the task serving it is cancelled, as a
    disconnect would. One timer per STREAMING_TIMEOUT rather than one per write: a write only notes when
    it started."""

    def __init__(self, send, response) -> None:
        self.send = send
        self.response = response
        self.serving: asyncio.Task | None = asyncio.current_task()
        self.loop = asyncio.get_running_loop()
        self.since: float | None = None  # loop time the pending write started
        self.timer = self.loop.call_later(settings.STREAMING_TIMEOUT, self.check)

    async def __call__(self, message: dict) -> None:
        self.since = self.loop.time()
        try:
            await self.send(message)
        finally:
            self.since = None

    def check(self) -> None:
        now = self.loop.time()
        if self.since is not None and now - self.since >= settings.STREAMING_TIMEOUT:
            if isinstance(self.response, RelayedStream):
                self.response.client_stalled()
            assert self.serving is not None  # built inside the task serving the response
            self.serving.cancel()
            return
        self.timer = self.loop.call_at((self.since or now) + settings.STREAMING_TIMEOUT, self.check)

    def stop(self) -> None:
        self.timer.cancel()
        self.serving = None  # a cancelled task's exception holds the frames that hold this: no cycle


def with_request_id(response):
    """Every relay answer carries X-Request-Id; relay.service sets the one its logs use, the rest get one here."""
    if "X-Request-Id" not in response:
        response["X-Request-Id"] = uuid.uuid4().hex
    return response


class SiteHandler(ASGIHandler):
    """Django's handler for admin, console and the management API, its sync work (middleware, views, signal
    receivers) on gateway_project.db's site threads.

    Django's own gives each request a thread of its own (a ThreadSensitiveContext), whose database
    connection (persistent: CONN_MAX_AGE None) outlived the thread: connections grew with requests, and
    concurrent requests opened as many as they were. The site threads keep one each for the process's life.
    A request's sync calls may run on different site threads: Django opens no transaction across them."""

    async def __call__(self, scope, receive, send) -> None:
        async with ThreadSensitiveContext(executor=site_executor):
            await self.handle(scope, receive, send)


class PathRouter:
    def __init__(self, relay: ASGIHandler, site: ASGIHandler) -> None:
        self.relay = relay
        self.site = site

    async def __call__(self, scope, receive, send) -> None:
        handler = self.relay if is_relay_path(scope["path"]) else self.site
        await handler(scope, receive, send)


def is_relay_path(path: str) -> bool:
    return path.startswith(RELAY_PREFIXES)


class RelayCors:
    """CORS on the relay paths, with django-cors-headers' rules (its middleware cannot serve them: they skip
    Django's middleware), so that browser apps can call the gateway with an API key. Admin, the console and
    /api/ authenticate by cookie or stay same-origin: they never get a CORS header.

    A preflight (OPTIONS with Access-Control-Request-Method) is answered here, before authentication: 204
    with the methods, the headers the browser asked for and how long to keep them. Every other answer to
    a request with an allowed Origin, errors and streams too, carries Access-Control-Allow-Origin: `*` when
    CORS_ALLOWED_ORIGINS is `*`, else the request's own Origin, with Vary: Origin."""

    METHODS = b"DELETE, GET, OPTIONS, PATCH, POST, PUT"
    MAX_AGE = b"86400"

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not is_relay_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        request_headers = dict(scope["headers"])
        cors = cors_headers(request_headers.get(b"origin"))
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in request_headers:
            await send_preflight(cors, request_headers, send)
            return
        if not cors:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *cors]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def cors_headers(origin: bytes | None) -> list[tuple[bytes, bytes]]:
    """The CORS headers of an answer to a request from `origin` (none without an Origin, or when it is not
    allowed; Vary: Origin whenever the answer depends on it)."""
    if origin is None:
        return []
    allowed = settings.CORS_ALLOWED_ORIGINS
    if not allowed:
        return []
    if "*" in allowed:
        return [(b"access-control-allow-origin", b"*")]
    if origin.decode("latin-1") in allowed:
        return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
    return [(b"vary", b"Origin")]


async def send_preflight(cors: list[tuple[bytes, bytes]], request_headers: dict[bytes, bytes], send) -> None:
    headers = [*cors, (b"content-length", b"0")]
    if any(name == b"access-control-allow-origin" for name, _ in cors):
        headers += [
            (b"access-control-allow-methods", RelayCors.METHODS),
            (b"access-control-max-age", RelayCors.MAX_AGE),
        ]
        asked = request_headers.get(b"access-control-request-headers")
        if asked:
            headers.append((b"access-control-allow-headers", asked))
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


class BodyLimit:
    """Refuses a body over its path's limit (`body_limit`) with a 413 as soon as that is known: at once from
    Content-Length, else when the chunks received pass it -- before any authentication work, and without
    reading the rest. The handlers behind read the whole body before they answer, so no answer has started.

    uvicorn and granian give the body chunk by chunk as it arrives; daphne reads all of it before the
    application sees any, so gateway_project.daphne_server refuses inside daphne the same way."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > body_limit(path):
            await send_refusal(path, send)
            return
        await self.app(scope, CountedReceive(path, receive, send), send)


class CountedReceive:
    """`receive` that counts the body; once it passes the limit it answers the 413 itself and tells the
    handler the client is gone (Django's handlers then stop without answering)."""

    GONE = {"type": "http.disconnect"}

    def __init__(self, path: str, receive, send) -> None:
        self.path = path
        self.limit = body_limit(path)
        self.receive = receive
        self.send = send
        self.received = 0
        self.refused = False

    async def __call__(self) -> dict:
        if self.refused:
            return self.GONE
        message = await self.receive()
        self.received += len(message.get("body", b""))
        if self.received > self.limit:
            self.refused = True
            await send_refusal(self.path, self.send)
            return self.GONE
        return message


def body_limit(path: str) -> int:
    """The largest body `path` takes: the relay's, or the much smaller one of admin, console and /api/."""
    return settings.RELAY_MAX_BODY_BYTES if is_relay_path(path) else settings.SITE_MAX_BODY_BYTES


def refusal(path: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of the 413 for a body over `path`'s limit, in the shape that path answers errors in
    (OpenAI's on the relay, `{"detail"}` on the management API, text elsewhere); the connection then closes,
    since the rest of the body is not read."""
    limit = body_limit(path)
    message = f"request body is larger than {limit} bytes"
    headers = [(b"connection", b"close")]
    if is_relay_path(path):
        body, content_type = orjson.dumps(body_too_large(limit).body()), b"application/json"
        headers.append((b"x-request-id", uuid.uuid4().hex.encode()))
    elif path.startswith("/api/"):
        body, content_type = orjson.dumps({"detail": message}), b"application/json"
    else:
        body, content_type = message.encode(), b"text/plain; charset=utf-8"
    headers += [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    return headers, body


async def send_refusal(path: str, send) -> None:
    headers, body = refusal(path)
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Lifespan:
    """ASGI lifespan (uvicorn and granian send it; daphne does not): at shutdown, commit the charges still
    gathering or retrying (billing.settlement), for at most SHUTDOWN_SETTLE_SECONDS; what is left waits in
    the settlement journal for the next process."""

    async def __call__(self, scope, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(settlement.drain(), SHUTDOWN_SETTLE_SECONDS)
                await send({"type": "lifespan.shutdown.complete"})
                return
