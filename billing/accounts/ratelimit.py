"""Requests-per-minute and tokens-per-minute limits per key and per user.

Limits come from the key's group in RATE_LIMITS (`{"default": {"key_rpm": 60, "key_tpm": 100000,
"user_rpm": 0, "user_tpm": 0}}`, 0 = no limit). A key's own `rpm_limit`/`tpm_limit` replace its group's
key limits and its user's replace the user limits (None = the group's limit, 0 = no limit), so an
operator can tighten or lift the limits of one key or user. Counters are fixed one-minute windows in the
shared cache: with Redis they are atomic INCRs, so a limit holds across every instance; with the memory
cache it holds per process. Tokens are counted when a request settles, so a burst of long requests can
overshoot the token limit by what is in flight; the next minute starts clean.
"""

import time
from dataclasses import dataclass, replace

from django.conf import settings
from django.core.cache import cache

from billing.accounts.key_auth import KeyInfo

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Limits:
    key_rpm: int = 0
    key_tpm: int = 0
    user_rpm: int = 0
    user_tpm: int = 0

    @property
    def any(self) -> bool:
        return bool(self.key_rpm or self.key_tpm or self.user_rpm or self.user_tpm)


class RateLimited(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def limits_for(group: str) -> Limits:
    configured = settings.RATE_LIMITS.get(group) or settings.RATE_LIMITS.get("default") or {}
    return Limits(**{name: int(configured.get(name) or 0) for name in Limits.__dataclass_fields__})


def limits_for_key(key: KeyInfo) -> Limits:
    """The key's group's limits with the key's and its user's own overrides applied."""
    overrides = {
        "key_rpm": key.rpm_limit,
        "key_tpm": key.tpm_limit,
        "user_rpm": key.user_rpm_limit,
        "user_tpm": key.user_tpm_limit,
    }
    return replace(limits_for(key.group), **{name: value for name, value in overrides.items() if value is not None})


def _window() -> tuple[int, int]:
    now = int(time.time())
    return now // WINDOW_SECONDS, WINDOW_SECONDS - now % WINDOW_SECONDS


def _bump(key: str, amount: int) -> int:
    """The counter after adding `amount`; 0 while Redis is down (limits fail open rather than refuse all)."""
    cache.add(key, 0, timeout=WINDOW_SECONDS * 2)
    try:
        return cache.incr(key, amount) or 0
    except ValueError:  # the window's counter expired between add and incr
        cache.set(key, amount, timeout=WINDOW_SECONDS * 2)
        return amount


def admit(key: KeyInfo) -> None:
    """Count this request; RateLimited when a request or token limit of this minute is already used up."""
    limits = limits_for_key(key)
    if not limits.any:
        return
    window, retry_after = _window()
    for scope, ident, rpm, tpm in (
        ("key", key.token_id, limits.key_rpm, limits.key_tpm),
        ("user", key.user_id, limits.user_rpm, limits.user_tpm),
    ):
        if tpm and (cache.get(f"rl:{scope}:{ident}:t:{window}") or 0) >= tpm:
            raise RateLimited(f"{scope} token limit of {tpm} per minute reached", retry_after)
        if rpm and _bump(f"rl:{scope}:{ident}:r:{window}", 1) > rpm:
            raise RateLimited(f"{scope} request limit of {rpm} per minute reached", retry_after)


def counts_tokens(key: KeyInfo) -> bool:
    """Whether a token limit applies to this key (then its requests' tokens are counted)."""
    limits = limits_for_key(key)
    return bool(limits.key_tpm or limits.user_tpm)


def count_tokens(key: KeyInfo, tokens: int) -> None:
    limits = limits_for_key(key)
    window, _ = _window()
    if limits.key_tpm:
        _bump(f"rl:key:{key.token_id}:t:{window}", tokens)
    if limits.user_tpm:
        _bump(f"rl:user:{key.user_id}:t:{window}", tokens)
