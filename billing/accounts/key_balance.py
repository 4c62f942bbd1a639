"""What a key has left and has used, in dollars, for key-usage tools (/v1/dashboard/billing/*)."""

from dataclasses import dataclass

from billing import pricing
from billing.accounts.key_auth import KeyInfo
from billing.models import ApiKey, User

UNLIMITED_USD = 100_000_000.0  # what one-api/new-api report for an unlimited key


@dataclass(frozen=True)
class Balance:
    total_usd: float
    used_usd: float
    access_until: int


def key_balance(key: KeyInfo) -> Balance:
    """A limited key reports its own figures; an unlimited key reports its user's quota."""
    quota_per_unit = pricing.current().quota_per_unit
    token = ApiKey.objects.get(pk=key.token_id)
    access_until = int(token.expires_at.timestamp()) if token.expires_at else 0
    if token.unlimited_quota:
        user = User.objects.get(pk=key.user_id)
        return Balance((user.quota + user.used_quota) / quota_per_unit, user.used_quota / quota_per_unit, access_until)
    total = token.remain_quota + token.used_quota
    return Balance(total / quota_per_unit, token.used_quota / quota_per_unit, access_until)
