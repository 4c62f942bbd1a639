"""Daily usage for the console and admin's dashboard: consumption per day, and the bars of a server-rendered
SVG chart."""

from dataclasses import dataclass
from datetime import date, timedelta

from django.utils import timezone
from django.utils.translation import gettext as _

from billing import daily_usage

CHART_WIDTH = 600
CHART_HEIGHT = 160


@dataclass(frozen=True)
class Day:
    day: date
    quota: int
    requests: int


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


def usage_by_day(
    user_id: int | None,
    days: int = 30,
    token_id: int | None = None,
    model: str | None = None,
    today: date | None = None,
) -> list[Day]:
    """Consumption of `user_id` (None: of everyone) per day (in TIME_ZONE, net of refunds), oldest first, `days`
    entries ending today; read from the daily aggregate, so it outlives deleted logs."""
    today = today or timezone.localdate()
    first = today - timedelta(days=days - 1)
    rows = daily_usage.usage_rows(user_id=user_id, token_id=token_id, model=model or None, first=first, last=today)
    found = daily_usage.per_day(rows)
    series = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = found.get(day, {})
        series.append(Day(day, row.get("quota", 0), row.get("requests", 0)))
    return series


def bars(series: list[Day], width: int = CHART_WIDTH, height: int = CHART_HEIGHT, measure: str = "quota") -> list[Bar]:
    """One bar per day of its `measure` ("quota" or "requests"), scaled so the busiest day fills the height (an
    empty series draws flat)."""
    if not series:
        return []
    peak = max(getattr(day, measure) for day in series) or 1
    slot = width / len(series)
    drawn = []
    for index, day in enumerate(series):
        bar_height = round(getattr(day, measure) / peak * height, 1)
        drawn.append(
            Bar(
                x=round(index * slot + 1, 1),
                y=round(height - bar_height, 1),
                width=round(max(slot - 2, 1), 1),
                height=bar_height,
                label=_("%(day)s: %(quota)d quota, %(requests)d requests")
                % {"day": f"{day.day:%Y-%m-%d}", "quota": day.quota, "requests": day.requests},
            )
        )
    return drawn


def chart(series: list[Day], measure: str = "quota") -> dict:
    """What a chart template draws of `series` (at least one day): the bars of `measure`, the first and last
    day, the peak and the total."""
    values = [getattr(day, measure) for day in series]
    return {
        "bars": bars(series, measure=measure),
        "first": series[0].day,
        "last": series[-1].day,
        "peak": max(values),
        "total": sum(values),
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
    }
