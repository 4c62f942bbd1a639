"""Run ORM work from async code on small pools of long-lived threads.

Django's default `sync_to_async` under ASGI gives every request a thread of its own, so each request
would open its own database connection. These threads keep one connection each for the life of the
process; a broken connection is dropped so the next call reconnects. The relay's work runs on DB_THREADS
threads (`run_db`); the sync work of admin, console and the management API on SITE_THREADS
(`site_executor`, gateway_project.asgi_handlers.SiteHandler). A process therefore holds at most DB_THREADS +
SITE_THREADS connections, plus one for the embedded periodic jobs when there is no Celery broker.
"""

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, ParamSpec, TypeVar

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import close_old_connections, connection

from gateway_project.env import envint

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def _call(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    except DatabaseError:
        if connection.connection is not None and not connection.is_usable():
            connection.close()
        raise


class ConnectionThreads(ThreadPoolExecutor):
    """Threads that each keep one database connection, checked before every call and dropped if it broke."""

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        # mypy cannot match a generic function's own ParamSpec against submit's (mypy's limit, not the code's)
        return super().submit(_call, fn, *args, **kwargs)  # type: ignore[arg-type]


_executor = ConnectionThreads(max_workers=envint("DB_THREADS", 4), thread_name_prefix="db")
site_executor = ConnectionThreads(max_workers=envint("SITE_THREADS", 4), thread_name_prefix="site")


async def run_db(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(fn, *args, **kwargs))


class GroupCommit(Generic[T, R]):
    """Run many requests' database work as one transaction: while a batch commits, the next one gathers.

    `apply` takes the gathered items and returns one result per item, or an exception instance for an
    item that failed on its own. A caller gets its result only after its batch committed, so batching
    costs no durability; under load one transaction (and one thread hop) serves many requests, and a
    lone request goes straight through. Items already submitted complete even if their caller is
    cancelled.
    """

    def __init__(self, apply: Callable[[list[T]], Sequence[R | Exception]], gather_seconds: float = 0.0) -> None:
        self.apply = apply
        self.gather_seconds = gather_seconds
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiting: list[tuple[T, asyncio.Future]] = []
        self.drainer: asyncio.Task | None = None

    def submit(self, item: T) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # a new event loop (tests start many): nothing of the old one carries over
            self.loop, self.waiting, self.drainer = loop, [], None
        future = loop.create_future()
        self.waiting.append((item, future))
        if self.drainer is None:
            self.drainer = loop.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        # Let the requests that are ready in this loop iteration (or within `gather_seconds`) join the batch.
        await asyncio.sleep(self.gather_seconds)
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                await self._commit(batch)
        finally:
            self.drainer = None

    async def _commit(self, batch: list[tuple[T, asyncio.Future]]) -> None:
        try:
            results = await run_db(self.apply, [item for item, _ in batch])
        except Exception as exc:  # the whole transaction failed: every item of it did
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
        Checkpoints.after_commit()


class Checkpoints:
    """SQLite: copy the write-ahead log back into the database file on a pool thread, at most once a second
    after commits, rather than inside whichever request's commit crosses `wal_autocheckpoint`: the copy
    and its flush to disk take 20-40 ms here, and that request waited for them (p99 at c=1: 28 -> 10 ms).
    PASSIVE takes no writer lock; what it cannot copy yet, the next one does."""

    EVERY_SECONDS = 1.0
    last = 0.0
    running: asyncio.Task | None = None
    loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def after_commit(cls) -> None:
        if settings.DATABASE_VENDOR != "sqlite":
            return
        loop = asyncio.get_running_loop()
        if cls.loop is not loop:  # a new event loop (tests start many): a task of the old one never finishes
            cls.loop, cls.running, cls.last = loop, None, 0.0
        if cls.running is not None or loop.time() - cls.last < cls.EVERY_SECONDS:
            return
        cls.last = loop.time()
        cls.running = loop.create_task(run_db(_checkpoint))
        cls.running.add_done_callback(cls._done)

    @classmethod
    def _done(cls, task: asyncio.Task) -> None:
        cls.running = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("WAL checkpoint failed: %s", task.exception())


def _checkpoint() -> None:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
