"""API key authentication with a cache in front of the database.

The cached entry holds only what rarely changes (status, limits, owner); quota is never cached, it is
reserved at the database. Saving or deleting a key or its user deletes the entry, which on Redis takes
effect on every instance within a second (see RECENT); each instance's local-memory cache forgets it within
SYNC_FREQUENCY.
"""

import ipaddress
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from billing.models import ApiKey, User, hash_key
from gateway_project.snapshot import Snapshot


class KeyRejected(Exception):
    """Authentication or permission failure; `status` and `code` go to the client."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class KeyInfo:
    # Named as the ledger's columns (Log.token_id, Log.token_name) that they fill.
    token_id: int
    token_name: str
    user_id: int
    group: str
    unlimited: bool
    enabled: bool
    user_active: bool
    is_staff: bool
    expires_at: float | None
    models: tuple[str, ...] | None
    allow_ips: tuple[str, ...] | None
    # Rate-limit overrides of the key and of its user (billing.accounts.ratelimit): None = the group's, 0 = no limit.
    # Defaults, so entries cached by an older version still load.
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    user_rpm_limit: int | None = None
    user_tpm_limit: int | None = None
    # The group the key is pinned to when its user (not staff) is no longer in it (key_group_allowed).
    revoked_group: str | None = None

    def check(self, client_ip: str | None) -> None:
        if not self.enabled or not self.user_active:
            raise KeyRejected(403, "this API key is disabled", "key_disabled")
        if self.revoked_group is not None:
            message = f"this API key is pinned to group {self.revoked_group}, which its user no longer belongs to"
            raise KeyRejected(403, message, "key_group_revoked")
        if self.expires_at is not None and self.expires_at < time.time():
            raise KeyRejected(403, "this API key has expired", "key_expired")
        if self.allow_ips and not ip_allowed(client_ip, self.allow_ips):
            raise KeyRejected(403, f"IP {client_ip} is not allowed to use this API key", "ip_not_allowed")

    def allows(self, model: str) -> bool:
        """The key's allow-list: exact names, or `prefix*` entries that cover every model with the prefix."""
        if self.models is None:
            return True
        return model in self.models or any(name.endswith("*") and model.startswith(name[:-1]) for name in self.models)

    def check_model(self, model: str) -> None:
        if not self.allows(model):
            raise KeyRejected(403, f"this API key may not use model {model}", "model_not_allowed")


def ip_allowed(client_ip: str | None, allowed: tuple[str, ...]) -> bool:
    if not client_ip:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def parse_key(header_value: str) -> tuple[str, int | None]:
    """`Bearer sk-KEY` or `sk-KEY-CHANNELID` -> (KEY, channel id or None)."""
    value = header_value.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    value = value.removeprefix("sk-")
    body, _, pin = value.partition("-")
    if not body:
        raise KeyRejected(401, "no API key provided: send Authorization: Bearer sk-...", "missing_api_key")
    if pin:
        if not (pin.isascii() and pin.isdigit()):
            raise KeyRejected(401, "invalid API key", "invalid_api_key")
        return body, int(pin)
    return body, None


def cache_key(key_hash: str) -> str:
    return f"key:{key_hash}"


def _load(key_hash: str) -> KeyInfo | None:
    key = ApiKey.objects.select_related("user").filter(key_hash=key_hash).first()
    if key is None:
        return None
    user = key.user
    return KeyInfo(
        token_id=key.pk,
        token_name=key.name,
        user_id=user.pk,
        group=key.group or user.group,
        unlimited=key.unlimited_quota,
        enabled=key.status == ApiKey.Status.ENABLED,
        user_active=user.is_active,
        is_staff=user.is_staff,
        expires_at=key.expires_at.timestamp() if key.expires_at else None,
        models=tuple(key.model_limits) if key.model_limits else None,
        allow_ips=tuple(key.allow_ips) if key.allow_ips else None,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        user_rpm_limit=user.rpm_limit,
        user_tpm_limit=user.tpm_limit,
        revoked_group=None if key_group_allowed(key.group, user) else key.group,
    )


def key_group_allowed(group: str | None, owner: User) -> bool:
    """A key's group sets its prices and channels: it may be pinned to its owner's group only, unless the owner
    is staff. Checked when a key is saved (billing.accounts.api_keys) and again at every authentication, as a user
    moved to another group takes their keys' pins with them."""
    return not group or group == owner.group or owner.is_staff


MISSING = "missing"


def lookup(key_body: str) -> KeyInfo | None:
    key_hash = hash_key(key_body)
    if not settings.MEMORY_CACHE_ENABLED and not settings.REDIS_CONN_STRING:
        return _load(key_hash)
    cached = cache.get(cache_key(key_hash))
    if cached == MISSING:
        return None
    if cached is not None:
        return cached
    info = _load(key_hash)
    # Unknown keys are remembered briefly so a flood of bad keys does not reach the database. A known key's
    # entry lives a second less than SYNC_FREQUENCY because RECENT may hold it a second longer in each process.
    timeout = max(settings.SYNC_FREQUENCY - RECENT.age_limit(), 0) if info else 5
    cache.set(cache_key(key_hash), info or MISSING, timeout=timeout)
    return info


# What this process looked up in the last second: a busy key costs one shared-cache read per second instead of
# one per request (that read goes through the database thread pool, as Redis I/O blocks). At most 10 000 keys,
# so a flood of made-up keys does not grow it without bound.
RECENT = Snapshot(lookup, max_age=1.0, limit=10_000)


async def authenticate(header_value: str, client_ip: str | None) -> tuple[KeyInfo, int | None]:
    body, pinned = parse_key(header_value)
    info = await RECENT.aget(body)
    if info is None:
        raise KeyRejected(401, "invalid API key", "invalid_api_key")
    info.check(client_ip)
    if pinned is not None and not info.is_staff:
        raise KeyRejected(403, "only admin keys may pin a channel (sk-KEY-CHANNELID)", "channel_pin_forbidden")
    return info, pinned


def forget_key(key: ApiKey) -> None:
    RECENT.forget()
    cache.delete(cache_key(key.key_hash))


def forget_user(user: User) -> None:
    RECENT.forget()
    cache.delete_many([cache_key(h) for h in ApiKey.objects.filter(user=user).values_list("key_hash", flat=True)])
