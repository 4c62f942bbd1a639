"""Admin's dashboard (/admin/dashboard/): the last 7 or 30 days of usage, the channels' health and the recent
automatic disables. It lives in the composition root because it shows billing's and channels_app's data
side by side; the numbers come from their service functions (billing.usage_overview,
channels_app.health_report)."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

from billing import usage_overview
from billing.console import charts
from channels_app import health_report

PERIODS = (7, 30)  # days


def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("billing.view_log"):
        raise PermissionDenied
    days = int(request.GET["days"]) if request.GET.get("days") in {str(period) for period in PERIODS} else PERIODS[0]
    since = usage_overview.first_day(days)
    series = charts.usage_by_day(None, days)
    context = {
        **admin.site.each_context(request),
        "title": _("Dashboard"),
        "days": days,
        "periods": PERIODS,
        "quota_chart": charts.chart(series, "quota"),
        "requests_chart": charts.chart(series, "requests"),
        "top_models": usage_overview.top_models(since),
        "top_users": usage_overview.top_users(since),
        "channels": health_report.channel_health(since),
        "auto_disabled": health_report.recently_auto_disabled(since),
    }
    return TemplateResponse(request, "admin/dashboard.html", context)
