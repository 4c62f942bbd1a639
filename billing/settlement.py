"""The relay's quota work: reserving before the upstream call and settling after it (billing.quota), plus
the tokens a request used against the per-minute limits (billing.ratelimit).

Concurrent requests share one transaction (gateway_project.db.GroupCommit). A reservation is committed
before the upstream call; a charge is safe before the answer goes out -- committed, or with
SETTLE_AFTER_ANSWER written to the settlement journal (billing.journal) and committed right after.
"""

import asyncio
import atexit
import functools
import itertools
import logging

from django.conf import settings
from django.db import DatabaseError

from billing import journal, quota, ratelimit
from billing.keys import KeyInfo
from gateway_project.db import GroupCommit, run_db

log = logging.getLogger(__name__)

RETRY_CAP_SECONDS = 30

_reservations = GroupCommit(quota.reserve_many)
_settlements = GroupCommit(quota.settle_many)
# A retry may find its reservation released by the reconciler meanwhile; it still owes the charge.
_late_settlements = GroupCommit(functools.partial(quota.settle_many, also_released=True))


async def reserve(request_id: str, key: KeyInfo, amount: int) -> None:
    """Hold `amount` for this request on the key and its user; QuotaExceeded if either lacks it."""
    pending = _reservations.submit(quota.Hold(request_id, key.token_id, key.user_id, key.unlimited, amount))
    try:
        await asyncio.shield(pending)
    except asyncio.CancelledError:
        # The client hung up while the batch was committing: give the hold back once it is there.
        pending.add_done_callback(lambda done: _release_if_reserved(done, request_id))
        raise


def _release_if_reserved(reserved: asyncio.Future, request_id: str) -> None:
    if not reserved.cancelled() and reserved.exception() is None:
        task = asyncio.ensure_future(run_db(quota.release, request_id))
        _releasing.add(task)
        task.add_done_callback(_releasing.discard)


_releasing: set[asyncio.Task] = set()


async def settle(key: KeyInfo, charge: quota.Charge) -> None:
    """Return once the charge is safe: journaled (SETTLE_AFTER_ANSWER) or committed."""
    settling = settle_soon(key, charge)
    if not settings.SETTLE_AFTER_ANSWER:
        await settling


def settle_soon(key: KeyInfo, charge: quota.Charge) -> asyncio.Task:
    """Settle the charge in a task of its own (so a client that hangs up cannot stop it); the task's result
    is False if this request id was settled before.

    With SETTLE_AFTER_ANSWER the charge is first written to the settlement journal, and the caller may
    answer at once: a charge the process dies before committing is settled by `journal.replay_orphans`.
    Otherwise the caller awaits the task before answering."""
    entry = _journal_entry(charge) if settings.SETTLE_AFTER_ANSWER else None
    task = asyncio.create_task(_settle(key, charge) if entry is None else _settle_journaled(key, charge, entry))
    _settling.add(task)
    task.add_done_callback(_settling.discard)
    return task


async def drain() -> None:
    """Wait for every settlement this process has started (tests read the ledger after it)."""
    while _settling:
        await asyncio.gather(*_settling, return_exceptions=True)


_settling: set[asyncio.Task] = set()
_journal = journal.Journal()
atexit.register(_journal.close)


def _journal_entry(charge: quota.Charge) -> journal.Segment | None:
    try:
        return _journal.write(charge)
    except OSError as error:  # a full or read-only disk: settle before answering, as without the journal
        log.error(
            "settlement journal not writable (%s); request %s settles before its answer", error, charge.request_id
        )
        return None


async def _settle(key: KeyInfo, charge: quota.Charge, also_released: bool = False) -> bool:
    settled = await (_late_settlements if also_released else _settlements).submit(charge)
    tokens = charge.prompt_tokens + charge.completion_tokens
    if settled and tokens > 0 and ratelimit.counts_tokens(key):
        await run_db(ratelimit.count_tokens, key, tokens)
    return settled


async def _settle_journaled(key: KeyInfo, charge: quota.Charge, entry: journal.Segment) -> bool:
    """Settle until the database takes it, then mark its journal entry done. While the database is down
    the charge waits here (and in the journal, should the process stop meanwhile)."""
    for attempt in itertools.count():
        try:
            settled = await _settle(key, charge, also_released=attempt > 0)
        except DatabaseError as error:
            log.warning("request %s: settlement failed (%s), retrying", charge.request_id, error)
            await asyncio.sleep(min(2**attempt, RETRY_CAP_SECONDS))
            continue
        except Exception:  # a bug: the entry stays in the journal, replayed when this process is gone
            log.exception("request %s: settlement failed", charge.request_id)
            return False
        _journal.done(entry)
        return settled
