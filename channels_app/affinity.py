"""Channel affinity (sticky sessions): a conversation goes back to the channel that served it last, so that the
upstream's prompt cache, which is per account, hits.

A conversation is named by the client (a header, a field of the body: the inbound format reads it,
relay.formats.base.InboundFormat.session_identity) and scoped here to the key's user, group and model: one
user's session id never steers another user's traffic. What a session remembers lives in the "affinity" cache
(Redis when configured, shared by every instance; else this process's memory, at most AFFINITY_MAX_ENTRIES,
the least recently used going first) for AFFINITY_TTL seconds after its last use.

The memory only prefers a channel (channels_app.routing.choose): one that is disabled, resting, out of the
key's group or below the tier that selection would choose from is passed over, and whichever channel then
serves the request is remembered instead.
"""

import hashlib

from django.conf import settings
from django.core.cache import caches
from prometheus_client import Counter

from gateway_project.db import run_db

# Reported on /metrics with the relay's own metrics, like channels_app.healing's.
SESSIONS = Counter(
    "gateway_affinity_requests_total",
    "Requests that named a conversation, by whether its remembered channel served them",
    ["result"],  # hit: the remembered channel; moved: another one; new: nothing was remembered
)


def session_key(user_id: int, group: str, model: str, identity: str) -> str:
    """The cache key of one conversation: the identity as the client sent it never leaves this function."""
    scoped = "\0".join((str(user_id), group, model, identity))
    return "affinity:" + hashlib.sha256(scoped.encode("utf-8", "surrogatepass")).hexdigest()


# (channel id, key position): a tuple, not a class, so that entries written by one release stay readable by the
# next; the position is None for a channel of one key.
Remembered = tuple[int, int | None]


async def recall(session: str) -> Remembered | None:
    """The channel (and key) that served the conversation last, if it was used within AFFINITY_TTL."""
    remembered = await _on_cache(caches["affinity"].get, session)
    if isinstance(remembered, tuple) and len(remembered) == 2 and isinstance(remembered[0], int):
        return remembered
    return None


async def remember(session: str, served: Remembered, recalled: Remembered | None) -> None:
    """The channel and key that `served` the conversation are remembered for another AFFINITY_TTL (refreshed
    on each use)."""
    SESSIONS.labels("new" if recalled is None else "hit" if recalled[0] == served[0] else "moved").inc()
    await _on_cache(caches["affinity"].set, session, served, settings.AFFINITY_TTL)


async def _on_cache(operation, *args):
    if settings.REDIS_CONN_STRING:
        # Redis I/O blocks: it goes through the database thread pool, as billing.accounts.key_auth's reads do.
        return await run_db(operation, *args)
    return operation(*args)
