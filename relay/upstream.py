"""One shared HTTP client per process (per event loop): httpx's API over aiohttp's connection pool."""

import asyncio

import httpx
from django.conf import settings
from httpx_aiohttp import AiohttpTransport


class _Shared:
    client: httpx.AsyncClient | None = None
    loop: asyncio.AbstractEventLoop | None = None


def client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    if _Shared.client is None or _Shared.loop is not loop:
        limits = httpx.Limits(
            max_connections=settings.RELAY_MAX_CONNECTIONS,
            max_keepalive_connections=settings.RELAY_MAX_CONNECTIONS,
            keepalive_expiry=60,
        )
        timeout = httpx.Timeout(settings.RELAY_TIMEOUT, connect=settings.RELAY_CONNECT_TIMEOUT)
        _Shared.client = httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=timeout)
        _Shared.loop = loop
    return _Shared.client
