"""The relay's quota work: reserving before the upstream call and settling after it (billing.quota), plus
the tokens a request used against the per-minute limits (billing.accounts.ratelimit).

Concurrent requests share one transaction (gateway_project.db.GroupCommit). A reservation is committed
before the upstream call; a charge is safe before the answer goes out -- committed, or with
SETTLE_AFTER_ANSWER written to the settlement journal (billing.journal) and committed right after.
"""

import asyncio
import atexit
import itertools
import logging
from collections.abc import Awaitable

from django.conf import settings
from django.db import DatabaseError

from billing import journal, quota
from billing.accounts import ratelimit
from billing.accounts.key_auth import KeyInfo
from gateway_project.db import GroupCommit, run_db

log = logging.getLogger(__name__)

RETRY_CAP_SECONDS = 30
JOURNALED_GATHER_SECONDS = 0.05

_reservations = GroupCommit(quota.reserve_many)


def _settle_many_owed(charges: list[quota.Charge]) -> list[bool]:
    """Journaled charges: by the time one commits, the reconciler may have released its reservation (the
    database was down for long); it still owes the charge."""
    return quota.settle_many(charges, also_released=True)


_settlements = GroupCommit(quota.settle_many)
# A journaled charge is safe already, so its commit may wait a little for others: one request at a time
# then still shares a settlement's transaction with its neighbours.
_journaled_settlements = GroupCommit(_settle_many_owed, gather_seconds=JOURNALED_GATHER_SECONDS)


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
    """Return once the charge is safe: written to the settlement journal (SETTLE_AFTER_ANSWER), so the
    caller may answer at once, or else committed. A charge the process dies before committing is settled
    by `journal.replay_orphans`."""
    settling, journaled = _start(key, charge)
    if not journaled:
        await settling


def settle_when_known(key: KeyInfo, charging: Awaitable[quota.Charge]) -> asyncio.Task:
    """Work the charge out, then `settle` it, all in a task of its own: a charge that takes time to work out
    (counting a long answer locally, building the tokenizer table first) is not lost when the request that
    owes it is cancelled meanwhile (its client hung up). Await it through asyncio.shield, or not at all; the
    task's result is the charge."""
    return _keep(_settle_known(key, charging))


async def _settle_known(key: KeyInfo, charging: Awaitable[quota.Charge]) -> quota.Charge:
    charge = await charging
    await settle(key, charge)
    return charge


def _start(key: KeyInfo, charge: quota.Charge) -> tuple[asyncio.Task, bool]:
    """Settle in a task of its own, so that a client that hangs up cannot stop it; whether it is journaled."""
    entry = _journal_entry(charge) if settings.SETTLE_AFTER_ANSWER else None
    task = _keep(_settle(key, charge) if entry is None else _settle_journaled(key, charge, entry))
    return task, entry is not None


def _keep(settling: Awaitable) -> asyncio.Task:
    """Run `settling` as a task referenced until it is done (the loop keeps only weak references), which
    `drain` waits for."""
    task = asyncio.ensure_future(settling)
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


async def _settle(key: KeyInfo, charge: quota.Charge, commits: GroupCommit = _settlements) -> bool:
    settled = await commits.submit(charge)
    tokens = charge.prompt_tokens + charge.completion_tokens
    if settled and tokens > 0 and ratelimit.counts_tokens(key):
        await run_db(ratelimit.count_tokens, key, tokens)
    return settled


async def _settle_journaled(key: KeyInfo, charge: quota.Charge, entry: journal.Segment) -> None:
    """Settle until the database takes it, then mark its journal entry done. While the database is down
    the charge waits here (and in the journal, should the process stop meanwhile)."""
    for attempt in itertools.count():
        try:
            await _settle(key, charge, _journaled_settlements)
        except DatabaseError as error:
            log.warning("request %s: settlement failed (%s), retrying", charge.request_id, error)
            await asyncio.sleep(min(2**attempt, RETRY_CAP_SECONDS))
            continue
        except Exception:  # a bug: the entry stays in the journal, replayed when this process is gone
            log.exception("request %s: settlement failed", charge.request_id)
        else:
            _journal.done(entry)
        return
