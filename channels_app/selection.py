"""Which channels serve a request, try after try: the channel choice with retries and rest, for the relay
(relay.service) and the task platform (tasks.service) alike.

Each try takes a channel by channels_app.routing.choose (the highest priority tier first, weighted random
inside it), never one already tried; a channel resting after transient failures (channels_app.healing.Rests)
only when nothing else is left. A failed try is noted (auto-disable, rest), and only a `retryable` failure
lets another channel be tried.
"""

from collections.abc import Iterator
from typing import Protocol

from channels_app import healing, routing
from channels_app.routing import ChannelInfo
from gateway_project.db import run_db

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
    candidates: list[ChannelInfo], attempts: int, tried: list[int] | None = None, preferred: int | None = None
) -> Iterator[ChannelInfo]:
    """Up to `attempts` channels of `candidates`, one per try; each is added to `tried` as it is handed out.
    The `preferred` one (a conversation's channel: channels_app.affinity) is taken first where routing would
    have drawn from it anyway, never when it rests."""
    tried = [] if tried is None else tried
    for _ in range(attempts):
        excluded = set(tried)
        # Resting channels are skipped while anything else can serve, but never leave the client with nothing.
        awake = routing.choose(candidates, excluded | healing.Rests.resting(), preferred=preferred)
        channel = awake or routing.choose(candidates, excluded)
        if channel is None:
            return
        tried.append(channel.id)
        yield channel


def succeeded(channel: ChannelInfo) -> None:
    healing.Rests.succeeded(channel.id)


async def note_failure(channel: ChannelInfo, failure: Failure) -> None:
    """A dead credential takes the channel out of rotation (when its auto_ban is on); a transient failure
    counts toward a rest."""
    if healing.is_permanent(failure.status, failure.permanent):
        if channel.auto_ban:
            await run_db(healing.auto_disable, channel, f"upstream status {failure.status}: {failure.message}")
    elif retryable(failure.status) or failure.status in TIMEOUTS:
        healing.Rests.failed(channel.id)
