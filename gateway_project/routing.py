"""HTTP routing at the ASGI level: relay paths skip Django's middleware and request signals.

The relay authenticates by API key and answers JSON or event streams: sessions, CSRF, auth and
messages middleware add nothing there, yet each costs a thread hop per request under ASGI.
"""

import asyncio
import contextlib
import uuid

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

from billing import settlement

RELAY_PREFIXES = ("/v1/", "/dashboard/", "/mj/", "/mj-", "/suno/")
SHUTDOWN_SETTLE_SECONDS = 10


class RelayHandler(ASGIHandler):
    """Django's ASGI handler with an empty middleware chain and without request_started/finished.

    Django sends those signals through sync_to_async inside a ThreadSensitiveContext, which starts and
    joins a thread for every request. Their receivers tidy the calling thread's database connections;
    relay views reach the database only through gateway_project.db's pool, which tidies its own.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
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
            await self.serve_until_disconnect(request, receive, send)

    async def serve_until_disconnect(self, request, receive, send) -> None:
        """Serve the request; a client that hangs up cancels it (a stream then bills what was sent)."""
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
        try:
            await self.send_response(response, send)
        finally:
            response.close()


def with_request_id(response):
    """Every relay answer carries X-Request-Id; relay.service sets the one its logs use, the rest get one here."""
    if "X-Request-Id" not in response:
        response["X-Request-Id"] = uuid.uuid4().hex
    return response


class PathRouter:
    def __init__(self, relay: ASGIHandler, site: ASGIHandler) -> None:
        self.relay = relay
        self.site = site

    async def __call__(self, scope, receive, send) -> None:
        handler = self.relay if scope["path"].startswith(RELAY_PREFIXES) else self.site
        await handler(scope, receive, send)


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
