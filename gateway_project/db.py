"""Run ORM work from async code on a small pool of long-lived threads.

Django's default `sync_to_async` under ASGI gives every request a thread of its own, so each request
would open (and drop) its own database connection. These threads keep one connection each for the life
of the process; a broken connection is dropped so the next call reconnects.
"""

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.db import Error as DatabaseError
from django.db import close_old_connections, connection

from gateway_project.env import envint

P = ParamSpec("P")
R = TypeVar("R")

_executor = ThreadPoolExecutor(max_workers=envint("DB_THREADS", 4), thread_name_prefix="db")


def _call(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    except DatabaseError:
        if connection.connection is not None and not connection.is_usable():
            connection.close()
        raise


async def run_db(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(_call, fn, *args, **kwargs))
