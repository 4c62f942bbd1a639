"""HTTP routing at the ASGI level: relay paths skip Django's middleware.

The relay authenticates by API key and answers JSON or event streams: sessions, CSRF, auth and
messages middleware add nothing there, yet each costs a thread hop per request under ASGI.
"""

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

RELAY_PREFIXES = ("/v1/", "/dashboard/", "/mj/", "/mj-", "/suno/")


class RelayHandler(ASGIHandler):
    """Django's ASGI handler with an empty middleware chain."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(
            self._get_response_async if is_async else self._get_response
        )


class PathRouter:
    def __init__(self, relay: ASGIHandler, site: ASGIHandler) -> None:
        self.relay = relay
        self.site = site

    async def __call__(self, scope, receive, send) -> None:
        handler = self.relay if scope["path"].startswith(RELAY_PREFIXES) else self.site
        await handler(scope, receive, send)
