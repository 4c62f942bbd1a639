"""Per-process snapshots of what rarely changes (prices, the channel index, recently seen API keys).

A snapshot is built from the database and kept in this process until it is older than `max_age` seconds, or
until the version another instance stored under `version_key` in the shared cache (Redis when configured)
differs from the one read before it was built. The version is read at most once per `recheck_seconds`, so a
warm process answers from memory and a change reaches every instance within about a second with Redis, and
within `max_age` without it (the local-memory cache's version is per process). Without a `version_key`, a
value is simply kept for `max_age`. The database stays the truth: a snapshot is only ever a copy.

A snapshot keeps one value per distinct set of arguments given to `get` (none, for a single value), at most
`limit` of them. Every snapshot is registered, so tests start from empty ones with `reset_all()`.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.conf import settings
from django.core.cache import cache

from gateway_project.db import run_db

T = TypeVar("T")

_SNAPSHOTS: list["Snapshot"] = []


@dataclass
class _Copy(Generic[T]):
    value: T
    version: object
    loaded_at: float
    checked_at: float


class Snapshot(Generic[T]):
    def __init__(
        self,
        load: Callable[..., T],
        *,
        version_key: str | None = None,
        recheck_seconds: float = 1.0,
        max_age: float | None = None,
        limit: int = 1,
    ) -> None:
        """`load(*args)` builds a value from the database; `max_age` None means SYNC_FREQUENCY (read at each
        check, so a changed setting applies at once)."""
        self.load = load
        self.version_key = version_key
        self.recheck_seconds = recheck_seconds
        self.max_age = max_age
        self.limit = limit
        self._copies: dict[tuple, _Copy[T]] = {}
        _SNAPSHOTS.append(self)

    def get(self, *args) -> T:
        """The value for `args`, rebuilt first when it is too old or its version changed (may read the shared
        cache and the database: call it on a database thread, or use `aget`)."""
        now = time.monotonic()
        copy = self._copies.get(args)
        if copy is not None and self._known_fresh(copy, now):
            return copy.value
        version = self._shared_version()
        if copy is not None and self._still_current(copy, version, now):
            copy.checked_at = now
            return copy.value
        # The version is read before the load, so a change made during the load brings another one.
        value = self.load(*args)
        if args not in self._copies and len(self._copies) >= self.limit:
            self._copies.clear()  # made-up arguments (a flood of unknown keys) must not grow it without bound
        self._copies[args] = _Copy(value, version, loaded_at=now, checked_at=now)
        return value

    async def aget(self, *args) -> T:
        """`get` without leaving the event loop while the value is known fresh (the common case)."""
        copy = self._copies.get(args)
        if copy is not None and self._known_fresh(copy, time.monotonic()):
            return copy.value
        return await run_db(self.get, *args)

    def peek(self, *args) -> T | None:
        """The value as this process last built it, without checking that it is fresh (None before the first)."""
        copy = self._copies.get(args)
        return copy.value if copy is not None else None

    def forget(self) -> None:
        """Drop this process's copies: the next `get` builds them again."""
        self._copies.clear()

    def invalidate(self) -> None:
        """After a change in the database: this process forgets at once, the others at their next version check."""
        self.forget()
        if self.version_key is not None:
            cache.set(self.version_key, time.time_ns(), timeout=None)

    def _known_fresh(self, copy: _Copy[T], now: float) -> bool:
        """Young enough, and its version checked within `recheck_seconds` (or it has none to check)."""
        recently_checked = self.version_key is None or now - copy.checked_at < self.recheck_seconds
        return recently_checked and not self._too_old(copy, now)

    def _still_current(self, copy: _Copy[T], version: object, now: float) -> bool:
        return self.version_key is not None and version == copy.version and not self._too_old(copy, now)

    def age_limit(self) -> float:
        """The most seconds a value is kept: `max_age`, else SYNC_FREQUENCY."""
        return settings.SYNC_FREQUENCY if self.max_age is None else self.max_age

    def _too_old(self, copy: _Copy[T], now: float) -> bool:
        return now - copy.loaded_at > self.age_limit()

    def _shared_version(self) -> object:
        return cache.get(self.version_key) if self.version_key is not None else None


def reset_all() -> None:
    """Every snapshot of this process forgets its copies (tests start each case from the database)."""
    for snapshot in _SNAPSHOTS:
        snapshot.forget()
