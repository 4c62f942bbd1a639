"""The in-memory group x model -> channels index, and channel choice.

The index is rebuilt from the database when it is older than SYNC_FREQUENCY seconds, or within a second
when any instance bumps the shared version key (Redis) after a channel change. With the local-memory cache
the version key is per process, so other processes converge within SYNC_FREQUENCY.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from gateway_project.snapshot import Snapshot

VERSION_KEY = "channels:index-version"


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
    # A channel of several keys: (position, key) of its enabled keys, how to pick one, and which one `key` is.
    keys: tuple[tuple[int, str], ...] = ()
    key_mode: str = "random"
    key_position: int | None = None

    def upstream_model(self, model: str) -> str:
        return self.model_mapping.get(model, model)


@dataclass
class Index:
    # (group, model) -> channels sorted by priority, highest first
    exact: dict[tuple[str, str], list[ChannelInfo]]
    # group -> [(prefix, channel)] for `prefix*` model entries
    wildcard: dict[str, list[tuple[str, ChannelInfo]]]
    by_id: dict[int, ChannelInfo]
    # (group, model entry) of every channel, enabled or not: whether a model is served at all
    listed: frozenset[tuple[str, str]] = frozenset()

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

    def serves_at_all(self, group: str, model: str) -> bool:
        """Whether any channel of `group`, enabled or not, lists `model` (by its name or a `prefix*`): an
        unknown model is the client's mistake, a known one whose channels are all off is the gateway's."""
        return (group, model) in self.listed or any(
            g == group and entry.endswith("*") and model.startswith(entry[:-1]) for g, entry in self.listed
        )

    def models_for_group(self, group: str) -> list[str]:
        names = {model for (g, model) in self.exact if g == group}
        names.update(f"{prefix}*" for prefix, _ in self.wildcard.get(group, ()))
        return sorted(names)


def build_index() -> Index:
    from channels_app.models import Channel

    exact: dict[tuple[str, str], list[ChannelInfo]] = {}
    wildcard: dict[str, list[tuple[str, ChannelInfo]]] = {}
    by_id: dict[int, ChannelInfo] = {}
    listed: set[tuple[str, str]] = set()
    for row in Channel.objects.prefetch_related("keys").order_by("-priority", "id"):
        listed.update((group, model) for group in row.groups or ["default"] for model in row.models)
        keys = list(row.keys.all())
        try:
            info = channel_info(row, keys)
        except ValueError:
            continue  # a key that cannot be decrypted cannot serve traffic
        by_id[info.id] = info
        if row.status != Channel.Status.ENABLED or keys and info.key_position is None:
            continue  # off, or every one of its keys is
        for group in row.groups or ["default"]:
            for model in row.models:
                if model.endswith("*"):
                    wildcard.setdefault(group, []).append((model[:-1], info))
                else:
                    exact.setdefault((group, model), []).append(info)
    return Index(exact, wildcard, by_id, frozenset(listed))


def channel_info(row, keys: Sequence = ()) -> ChannelInfo:
    """What the relay needs of one Channel row and its ChannelKey rows (`keys`; none: the channel's first key
    only); ValueError when a key cannot be decrypted. A channel of several keys carries its enabled ones, the
    first as `key` (selection.channels_to_try picks one per try)."""
    enabled = tuple((k.position, k.key) for k in keys if k.status == row.Status.ENABLED)
    first = enabled[0] if enabled else (None, row.key)
    return ChannelInfo(
        id=row.pk,
        name=row.name,
        type=row.type,
        key=first[1],
        keys=enabled,
        key_mode=row.key_mode,
        key_position=first[0],
        base_url=row.base_url.rstrip("/"),
        priority=row.priority,
        weight=row.weight,
        auto_ban=row.auto_ban,
        model_mapping=row.model_mapping or {},
        status_code_mapping={str(k): int(v) for k, v in (row.status_code_mapping or {}).items()},
        config=row.config or {},
        test_model=row.test_model,
    )


INDEX = Snapshot(build_index, version_key=VERSION_KEY)


def invalidate() -> None:
    """Called after any channel change: every instance rebuilds its index on its next request."""
    INDEX.invalidate()


def get_index() -> Index:
    return INDEX.get()


def loaded_index() -> Index | None:
    """The index as this process last built it, without checking that it is fresh (None before the first)."""
    return INDEX.peek()


async def aget_index() -> Index:
    """The index without leaving the event loop while it is known fresh (the common case)."""
    return await INDEX.aget()


def choose(
    candidates: list[ChannelInfo], exclude: set[int], rng: random.Random | None = None, preferred: int | None = None
) -> ChannelInfo | None:
    """Weighted random inside the highest priority tier that still has an untried channel; the `preferred`
    channel (channels_app.affinity) whenever the draw could have given it.

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
    if preferred is not None:
        for channel, weight in zip(tier, weights, strict=True):
            if channel.id == preferred and weight:
                return channel
    return (rng or random).choices(tier, weights=weights, k=1)[0]
