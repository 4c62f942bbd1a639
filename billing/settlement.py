"""The relay's quota work: reserving before the upstream call and settling after it (billing.quota), plus
the tokens a request used against the per-minute limits (billing.ratelimit).

Concurrent requests share one transaction (gateway_project.db.GroupCommit): each caller still returns
only once its own reservation or charge is committed.
"""

import asyncio

from billing import quota, ratelimit
from billing.keys import KeyInfo
from gateway_project.db import GroupCommit, run_db

_reservations = GroupCommit(quota.reserve_many)
_settlements = GroupCommit(quota.settle_many)


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


async def settle(key: KeyInfo, charge: quota.Charge) -> bool:
    """Charge the request and write its log; False if this request id was settled before."""
    settled = await _settlements.submit(charge)
    tokens = charge.prompt_tokens + charge.completion_tokens
    if settled and tokens > 0 and ratelimit.counts_tokens(key):
        await run_db(ratelimit.count_tokens, key, tokens)
    return settled
