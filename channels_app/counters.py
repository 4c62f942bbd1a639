"""The channels' used_quota counters, moved by billing's settlements and refunds.

billing.quota announces what each channel served (`channels_charged`) inside its transaction, after it has
locked the keys and users: the channels come next in its lock order, one UPDATE per channel in id order.
The statement is billing.rows' plain SQL, as the rest of the settlement's, since this runs for every request.
"""

from billing import rows
from channels_app.models import Channel


def add_used_quota(quota_by_channel: dict[int, int], **_signal: object) -> None:
    for channel_id in sorted(quota_by_channel):
        if quota_by_channel[channel_id]:
            rows.add(Channel, {"id": channel_id}, {"used_quota": quota_by_channel[channel_id]})
