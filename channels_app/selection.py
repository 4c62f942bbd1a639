"""Which channels serve a request, try after try: the channel choice with retries and rest, for the relay
(relay.service) and the task platform (tasks.service) alike.

Each try takes a channel by channels_app.routing.choose (the highest priority tier first, weighted random
inside it), never one already tried; a channel resting after transient failures (channels_app.healing.Rests)
only when nothing else is left. A failed try is noted (auto-disable, rest), and only a `retryable` failure
lets another channel be tried.

A channel of several keys is handed out with one of its enabled keys, at random or in turn (its key_mode).
A key that fails as a dead credential is disabled (healing.auto_disable_key) and noted in the request's
`dead_keys`: the next try may take the same channel again with another of its keys.
"""

import random
from collections.abc import Iterator
from dataclasses import replace
from typing import Protocol

from django.core.cache import cache

from channels_app import healing, routing
from channels_app.affinity import Remembered
from channels_app.routing import ChannelInfo
from gateway_project.db import run_db

DeadKeys = set[tuple[int, int]]  # (channel id, key position)

NEVER_RETRIED = {400, 404, 413, 422, 504, 524}
TIMEOUTS = {504, 524}  # reached but silent: not retried (it may still be working), yet a sign to rest


class Failure(Protocol):
    """A failed try as the relay reads it (relay.adaptors.base.UpstreamFailure)."""

    status: int
    message: str
    permanent: bool  # the adaptor read that the channel's credential or account cannot serve anyone


def retryable(status: int) -> bool:
    return status not in NEVER_RETRIED and (status >= 500 or status in (401, 403, 408, 429))


def channels_to_try(
    candidates: list[ChannelInfo],
    attempts: int,
    tried: list[int] | None = None,
    dead_keys: DeadKeys | None = None,
    preferred: Remembered | None = None,
) -> Iterator[ChannelInfo]:
    """Up to `attempts` channels of `candidates`, one per try, each with the key it is to use; each is added to
    `tried` as it is handed out. The `preferred` channel and key (a conversation's: channels_app.affinity) are
    taken first where routing would have drawn from that channel anyway, never when it rests."""
    tried = [] if tried is None else tried
    dead_keys = set() if dead_keys is None else dead_keys
    for _ in range(attempts):
        excluded = set(tried) - with_another_key(candidates, dead_keys) if dead_keys else set(tried)
        # Resting channels are skipped while anything else can serve, but never leave the client with nothing.
        preferred_id, preferred_key = preferred or (None, None)
        awake = routing.choose(candidates, excluded | healing.Rests.resting(), preferred=preferred_id)
        channel = awake or routing.choose(candidates, excluded)
        if channel is None:
            return
        tried.append(channel.id)
        yield with_key(channel, dead_keys, preferred_key if channel.id == preferred_id else None)


def live_keys(channel: ChannelInfo, dead_keys: DeadKeys) -> list[tuple[int, str]]:
    return [key for key in channel.keys if (channel.id, key[0]) not in dead_keys]


def with_another_key(candidates: list[ChannelInfo], dead_keys: DeadKeys) -> set[int]:
    """The channels that lost a key in this request and have another left: they may be tried again."""
    lost = {channel_id for channel_id, _ in dead_keys}
    return {c.id for c in candidates if c.id in lost and live_keys(c, dead_keys)}


def with_key(channel: ChannelInfo, dead_keys: DeadKeys, preferred_key: int | None = None) -> ChannelInfo:
    """The channel with the key this try uses: its only key, the conversation's key while it lives (the
    upstream's prompt cache is per account), or one of its live keys by its key_mode."""
    if not channel.keys:
        return channel
    keys = live_keys(channel, dead_keys) or list(channel.keys)
    for position, key in keys:
        if position == preferred_key:
            return replace(channel, key=key, key_position=position)
    turn = next_turn(channel.id) if channel.key_mode == "polling" else None
    position, key = keys[turn % len(keys)] if turn is not None else random.choice(keys)
    return replace(channel, key=key, key_position=position)


def next_turn(channel_id: int) -> int | None:
    """A counter shared by every instance through the cache (atomic INCR in Redis; per process with the
    local-memory cache); None when the cache is down, and the key is then picked at random. A synchronous call
    on the event loop, made only for polling channels: one round trip to Redis, bounded by its socket timeout."""
    name = f"channels:key-turn:{channel_id}"
    try:
        return cache.incr(name)
    except ValueError:  # not there yet (or evicted)
        cache.add(name, 0, timeout=None)
        try:
            return cache.incr(name)
        except ValueError:
            return None


def succeeded(channel: ChannelInfo) -> None:
    healing.Rests.succeeded(channel.id)


async def note_failure(channel: ChannelInfo, failure: Failure, dead_keys: DeadKeys | None = None) -> None:
    """A dead credential takes the key (of a channel of several) or the channel out of rotation (when its
    auto_ban is on); a transient failure counts toward a rest."""
    if healing.is_permanent(failure.status, failure.permanent):
        reason = f"upstream status {failure.status}: {failure.message}"
        if channel.key_position is not None and dead_keys is not None:
            dead_keys.add((channel.id, channel.key_position))
        if channel.auto_ban:
            disable = healing.auto_disable if channel.key_position is None else healing.auto_disable_key
            await run_db(disable, channel, reason)
    elif retryable(failure.status) or failure.status in TIMEOUTS:
        healing.Rests.failed(channel.id)
