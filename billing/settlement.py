"""Settling a finished relay request: its charge (billing.quota) and its tokens against the per-minute
limits (billing.ratelimit)."""

from billing import quota, ratelimit
from billing.keys import KeyInfo


def settle(key: KeyInfo, charge: quota.Charge) -> None:
    quota.settle(charge)
    ratelimit.count_tokens(key, charge.prompt_tokens + charge.completion_tokens)
