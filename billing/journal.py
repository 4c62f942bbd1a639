"""The settlement journal: a charge is appended here before its answer goes out and settled after it.

With SETTLE_AFTER_ANSWER (the default) the relay answers without waiting for the settlement's commit.
What makes that safe is this file: one `write` per charge into the process's segment, done before the
response starts. A killed process leaves its data in the page cache, so the charge survives like a
commit of SQLite at synchronous=NORMAL (not a power cut: see the README). Once the charge has been
committed, its entry is done; a segment is deleted when it is full and all its entries are done.

Each segment is locked (flock) by the process that writes it for as long as it lives. `replay_orphans`
takes every segment whose lock it can get -- its writer is gone -- settles what the database does not have
yet (settlement is idempotent on the request id; see billing.quota.settle_many's `also_released`) and
deletes it. The web processes of a host run it at start-up and every RECONCILE_INTERVAL, so the journal
directory must be on the host's own disk, kept across restarts.
"""

import fcntl
import logging
import os
import socket
import time
from dataclasses import asdict
from pathlib import Path

import orjson
from django.conf import settings

from billing import quota

log = logging.getLogger(__name__)

SEGMENT_ENTRIES = 10_000
REPLAY_BATCH = 500


class Segment:
    """One journal file this process appends to, and how many of its entries are not settled yet."""

    def __init__(self, directory: Path, serial: int) -> None:
        name = f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}-{serial}"
        creating = directory / f"{name}.creating"
        self.path = directory / f"{name}.jsonl"
        self.fd = os.open(creating, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        os.rename(creating, self.path)  # locked before a replayer can see it under its real name
        self.written = 0
        self.pending = 0

    def append(self, line: bytes) -> None:
        if os.write(self.fd, line) < len(line):  # a full disk: this segment takes nothing more
            self.written = SEGMENT_ENTRIES
            raise OSError("short write to the settlement journal")
        self.written += 1
        self.pending += 1

    def remove(self) -> None:
        os.unlink(self.path)
        os.close(self.fd)


class Journal:
    def __init__(self) -> None:
        self.current: Segment | None = None
        self.owner: int | None = None
        self.serial = 0

    def write(self, charge: quota.Charge) -> Segment:
        """Append one charge; returns its segment, to hand to `done` once the charge is committed."""
        segment = self._segment()
        segment.append(orjson.dumps(asdict(charge)) + b"\n")
        return segment

    def close(self) -> None:
        """At exit: the current segment goes if everything in it is settled (else it waits for a replay)."""
        if self.current is not None and self.owner == os.getpid() and self.current.pending == 0:
            self.current.remove()
            self.current = None

    def done(self, segment: Segment) -> None:
        segment.pending -= 1
        self._remove_if_finished(segment)

    def _remove_if_finished(self, segment: Segment) -> None:
        """A segment goes once it is no longer written to and everything in it is committed."""
        if segment is not self.current and segment.pending == 0:
            segment.remove()

    def _segment(self) -> Segment:
        if self.owner != os.getpid():  # a forked child must not write into its parent's segment
            self.current, self.owner = None, os.getpid()
        current = self.current
        if current is None or current.written >= SEGMENT_ENTRIES:
            directory = Path(settings.SETTLEMENT_JOURNAL_DIR)
            directory.mkdir(parents=True, exist_ok=True)
            self.serial += 1
            previous, current = current, Segment(directory, self.serial)
            self.current = current
            if previous is not None:
                self._remove_if_finished(previous)
        return current


def replay_orphans() -> int:
    """Settle the charges left in the segments of processes that are gone; the number settled now."""
    directory = Path(settings.SETTLEMENT_JOURNAL_DIR)
    if not directory.is_dir():
        return 0
    return sum(_replay(path) for path in sorted(directory.glob("*.jsonl")))


def _replay(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # its writer finished it, or another replayer did
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer is alive
            return 0
        if os.fstat(fd).st_nlink == 0:  # replayed and deleted between our open and our lock
            return 0
        with os.fdopen(os.dup(fd), "rb") as lines:
            charges = [charge for line in lines if (charge := _charge(path, line)) is not None]
        settled = sum(
            sum(quota.settle_many(charges[start : start + REPLAY_BATCH], also_released=True))
            for start in range(0, len(charges), REPLAY_BATCH)
        )
        os.unlink(path)
    finally:
        os.close(fd)
    if settled:
        log.warning("settled %d charges left in %s by a process that ended before settling them", settled, path.name)
    return settled


def _charge(path: Path, line: bytes) -> quota.Charge | None:
    try:
        return quota.Charge(**orjson.loads(line))
    except (orjson.JSONDecodeError, TypeError):  # a line cut short by a full disk
        log.error("unreadable entry in settlement journal %s: %r", path.name, line[:200])
        return None
