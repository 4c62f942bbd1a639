"""The channel types this gateway serves, as their adaptors declare them.

channels_app knows no adaptor: when their apps are ready, the relay and the task platform register the type
of each of their adaptors here (relay.adaptors.registry, tasks.adaptors.registry). The Channel model's
validation, the admin form, the management API's schema, `channel_add` and the one-api importer read the
types from here, so adding a provider is its adaptor module (with its tests) and its registry line.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

ONE_API = "one-api"
NEW_API = "new-api"
FLAVOURS = (ONE_API, NEW_API)

# (key, config) -> problems by field name (`key` or `config`), empty when the channel can be saved.
Check = Callable[[str, dict], dict[str, str]]


@dataclass(frozen=True)
class OldType:
    """A one-api / new-api channel type number that becomes this type when imported."""

    number: int
    flavours: tuple[str, ...] = FLAVOURS
    base_url: str = ""  # set when the source's base_url is empty: the provider's host, our default is not it
    chat_path: str = ""  # appended to the base URL: a `custom` channel's full chat URL, a preset's API root


def both(number: int, base_url: str = "", chat_path: str = "") -> OldType:
    """A type number one-api and new-api agree on."""
    return OldType(number, FLAVOURS, base_url, chat_path)


def one_api(number: int, base_url: str = "", chat_path: str = "") -> OldType:
    return OldType(number, (ONE_API,), base_url, chat_path)


def new_api(number: int, base_url: str = "", chat_path: str = "") -> OldType:
    return OldType(number, (NEW_API,), base_url, chat_path)


@dataclass(frozen=True)
class ChannelType:
    slug: str
    label: str
    key_in_headers: bool = True  # False: the key is a document the adaptor signs with (Vertex's service account)
    check: Check | None = None  # the type's own rules for the key and config
    old_types: tuple[OldType, ...] = ()
    base_url: str = ""  # used when a channel's base URL is empty (admin shows it as the placeholder)
    models: tuple[str, ...] = ()  # what a new channel of the type starts with in admin


class _Registry:
    """Filled once at start-up (AppConfig.ready), read ever after."""

    types: dict[str, ChannelType] = {}


def register(channel_type: ChannelType) -> None:
    """Add a type; ImproperlyConfigured when its slug, or one of its old numbers, is another type's."""
    if _Registry.types.get(channel_type.slug, channel_type) != channel_type:
        raise ImproperlyConfigured(f"channel type {channel_type.slug!r} is registered twice")
    for old in channel_type.old_types:
        for flavour in old.flavours:
            owner, _ = _old_types(_Registry.types, flavour).get(old.number, (channel_type.slug, old))
            if owner != channel_type.slug:
                raise ImproperlyConfigured(f"{flavour} type {old.number} is both {owner} and {channel_type.slug}")
    _Registry.types[channel_type.slug] = channel_type


def registered() -> dict[str, ChannelType]:
    """Every type by slug, in registration order."""
    if not _Registry.types:
        raise ImproperlyConfigured("no channel type is registered yet: the relay's AppConfig.ready registers them")
    return _Registry.types


def slugs() -> tuple[str, ...]:
    return tuple(registered())


def choices() -> list[tuple[str, str]]:
    return [(slug, kind.label) for slug, kind in registered().items()]


def find(slug: str) -> ChannelType | None:
    return registered().get(slug)


def old_types(flavour: str) -> dict[int, tuple[str, OldType]]:
    """A one-api or new-api type number -> (our type's slug, how it is imported)."""
    return _old_types(registered(), flavour)


def _old_types(types: dict[str, ChannelType], flavour: str) -> dict[int, tuple[str, OldType]]:
    return {
        old.number: (slug, old) for slug, kind in types.items() for old in kind.old_types if flavour in old.flavours
    }
