"""Serve an aiohttp application from a daemon thread on 127.0.0.1 (random port), for fake upstreams."""

import asyncio
import threading
from collections.abc import Callable

from aiohttp import web


def serve(add_routes: Callable[[web.Application], None]) -> int:
    """Start the app in its own event loop; returns the bound port once it listens."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    async def run() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(site._server.sockets[0].getsockname()[1])
        ready.set()

    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(run(), loop)
    if not ready.wait(10):
        raise RuntimeError("fake upstream did not start")
    return port[0]
