"""The in-memory group x model -> channels index, and channel choice.

The index is rebuilt from the database when it is older than SYNC_FREQUENCY seconds, or at once when
any instance bumps the shared version key (Redis) after a channel change. With the local-memory cache
the version key is per process, so other processes converge within SYNC_FREQUENCY.
"""

import random
import time
from dataclasses import dataclass, field
from functools import cached_property

from django.conf import settings
from django.core.cache import cache

from gateway_project.db import run_db

VERSION_KEY = "channels:index-version"
VERSION_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class ChannelInfo:
    """What the relay needs of a channel, with the key already decrypted."""

    id: int
    name: str
    type: str
    key: str
    base_url: str
    priority: int
    weight: int
    auto_ban: bool = True
    model_mapping: dict = field(default_factory=dict)
    status_code_mapping: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    test_model: str = ""

    def upstream_model(self, model: str) -> str:
        return self.model_mapping.get(model, model)


@dataclass
class Index:
    # (group, model) -> channels sorted by priority, highest first
    exact: dict[tuple[str, str], list[ChannelInfo]]
    # group -> [(prefix, channel)] for `prefix*` model entries
    wildcard: dict[str, list[tuple[str, ChannelInfo]]]
    by_id: dict[int, ChannelInfo]
    version: object
    built_at: float

    def candidates(self, group: str, model: str) -> list[ChannelInfo]:
        found = self.exact.get((group, model))
        if found:
            return found
        matches = [channel for prefix, channel in self.wildcard.get(group, ()) if model.startswith(prefix)]
        return sorted(matches, key=lambda c: -c.priority)

    @cached_property
    def listed_models(self) -> frozenset[str]:
        return frozenset(model for _, model in self.exact)

    @cached_property
    def listed_prefixes(self) -> tuple[str, ...]:
        return tuple({prefix for entries in self.wildcard.values() for prefix, _ in entries})

    def listing_of(self, model: str) -> str | None:
        """The entry of an enabled channel (in any group) that serves `model`: its own name, or the `prefix*`
        that covers it; None when no channel does."""
        if model in self.listed_models:
            return model
        return next((f"{prefix}*" for prefix in self.listed_prefixes if model.startswith(prefix)), None)

    def models_for_group(self, group: str) -> list[str]:
        names = {model for (g, model) in self.exact if g == group}
        names.update(f"{prefix}*" for prefix, _ in self.wildcard.get(group, ()))
        return sorted(names)


class _State:
    index: Index | None = None
    checked_at: float = 0.0


def invalidate() -> None:
    """Called after any channel change: every instance rebuilds its index on its next request."""
    _State.index = None
    cache.set(VERSION_KEY, time.time_ns(), timeout=None)


def build_index() -> Index:
    from channels_app.models import Channel

    version = cache.get(VERSION_KEY)
    exact: dict[tuple[str, str], list[ChannelInfo]] = {}
    wildcard: dict[str, list[tuple[str, ChannelInfo]]] = {}
    by_id: dict[int, ChannelInfo] = {}
    for row in Channel.objects.all().order_by("-priority", "id"):
        try:
            info = channel_info(row)
        except ValueError:
            continue  # a key that cannot be decrypted cannot serve traffic
        by_id[info.id] = info
        if row.status != Channel.Status.ENABLED:
            continue
        for group in row.groups or ["default"]:
            for model in row.models:
                if model.endswith("*"):
                    wildcard.setdefault(group, []).append((model[:-1], info))
                else:
                    exact.setdefault((group, model), []).append(info)
    return Index(exact, wildcard, by_id, version, time.monotonic())


def channel_info(row) -> ChannelInfo:
    """What the relay needs of one Channel row; ValueError when its key cannot be decrypted."""
    return ChannelInfo(
        id=row.pk,
        name=row.name,
        type=row.type,
        key=row.key,
        base_url=row.base_url.rstrip("/"),
        priority=row.priority,
        weight=row.weight,
        auto_ban=row.auto_ban,
        model_mapping=row.model_mapping or {},
        status_code_mapping={str(k): int(v) for k, v in (row.status_code_mapping or {}).items()},
        config=row.config or {},
        test_model=row.test_model,
    )


def _is_fresh(index: Index) -> bool:
    now = time.monotonic()
    if now - index.built_at > settings.SYNC_FREQUENCY:
        return False
    if now - _State.checked_at < VERSION_CHECK_SECONDS:
        return True
    _State.checked_at = now
    return cache.get(VERSION_KEY) == index.version


def get_index() -> Index:
    index = _State.index
    if index is None or not _is_fresh(index):
        index = _State.index = build_index()
        _State.checked_at = index.built_at  # it read the version key just now
    return index


def loaded_index() -> Index | None:
    """The index as this process last built it, without checking that it is fresh (None before the first)."""
    return _State.index


async def aget_index() -> Index:
    """The index without leaving the event loop while it is known fresh (the common case)."""
    index = _State.index
    now = time.monotonic()
    if (
        index is not None
        and now - index.built_at <= settings.SYNC_FREQUENCY
        and now - _State.checked_at < VERSION_CHECK_SECONDS
    ):
        return index
    return await run_db(get_index)


def choose(candidates: list[ChannelInfo], exclude: set[int], rng: random.Random | None = None) -> ChannelInfo | None:
    """Weighted random inside the highest priority tier that still has an untried channel.

    Weight 0 means "only when nothing else in the tier is left"; a tier of only zero weights is uniform.
    """
    remaining = [c for c in candidates if c.id not in exclude]
    if not remaining:
        return None
    top = remaining[0].priority
    tier = [c for c in remaining if c.priority == top]
    weights = [c.weight for c in tier]
    if not any(weights):
        weights = [1] * len(tier)
    return (rng or random).choices(tier, weights=weights, k=1)[0]
