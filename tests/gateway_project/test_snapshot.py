"""The per-process snapshot (gateway_project/snapshot.py): kept while young, its shared version checked at most
once per recheck, rebuilt when that version moves or it grows too old, bounded, and emptied by reset_all()."""

from collections.abc import Callable

import pytest
from django.core.cache import cache

from gateway_project import snapshot
from gateway_project.snapshot import Snapshot


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(snapshot.time, "monotonic", clock)
    return clock


def counting_loader() -> tuple[list[tuple], Callable[..., int]]:
    loads: list[tuple] = []

    def load(*args) -> int:
        loads.append(args)
        return len(loads)

    return loads, load


def test_a_version_bump_is_seen_at_the_next_recheck(clock):
    loads, load = counting_loader()
    prices = Snapshot(load, version_key="test:snapshot-version", recheck_seconds=1.0, max_age=60)
    assert prices.get() == 1
    cache.set("test:snapshot-version", "another instance changed it")
    clock.now += 0.5
    assert prices.get() == 1  # within the recheck: not even the shared version is read
    clock.now += 0.6
    assert prices.get() == 2
    clock.now += 1.1
    assert prices.get() == 2  # version unchanged: kept
    prices.invalidate()
    assert prices.peek() is None and prices.get() == 3


def test_a_value_older_than_max_age_is_rebuilt_whatever_its_version(clock):
    loads, load = counting_loader()
    index = Snapshot(load, version_key="test:snapshot-age", max_age=5)
    index.get()
    clock.now += 5.5
    index.get()
    assert len(loads) == 2


@pytest.mark.django_db(transaction=True)  # a value that is not fresh is loaded on a database thread (run_db)
async def test_without_a_version_key_a_value_is_kept_for_max_age_per_argument(clock):
    loads, load = counting_loader()
    recent = Snapshot(load, max_age=1.0, limit=2)
    assert await recent.aget("a") == 1 and await recent.aget("a") == 1
    await recent.aget("b")
    await recent.aget("c")  # a third key empties the full table first
    assert recent.peek("a") is None and recent.peek("c") == 3
    clock.now += 1.5
    assert await recent.aget("c") == 4
    assert loads == [("a",), ("b",), ("c",), ("c",)]


def test_reset_all_empties_every_snapshot(clock):
    _, load = counting_loader()
    first, second = Snapshot(load), Snapshot(load, max_age=10)
    first.get(), second.get("x")
    snapshot.reset_all()
    assert first.peek() is None and second.peek("x") is None
