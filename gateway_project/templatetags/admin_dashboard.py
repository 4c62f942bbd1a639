"""The dashboard's box on the admin index, and quota shown in USD."""

from django import template
from django.db.models import Count

from billing import daily_usage, pricing, usage_overview
from channels_app.models import Channel

register = template.Library()

BOX_DAYS = 7


@register.filter
def quota_usd(quota: int) -> str:
    return f"${quota / pricing.current().quota_per_unit:,.2f}"


@register.filter
def percent(share: float) -> str:
    return f"{share:.1%}"


@register.inclusion_tag("admin/dashboard_box.html")
def dashboard_box() -> dict:
    """The last week's totals and how many channels are out of rotation: two queries."""
    totals = daily_usage.totals(daily_usage.usage_rows(first=usage_overview.first_day(BOX_DAYS)))
    counted = Channel.objects.order_by().values("status").annotate(count=Count("id"))
    statuses = {**dict.fromkeys(Channel.Status.values, 0), **{row["status"]: row["count"] for row in counted}}
    return {"days": BOX_DAYS, "totals": totals, "channels": statuses, "channel_count": sum(statuses.values())}
