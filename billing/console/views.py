"""The user console: server-rendered pages for one's own keys, usage, top-up and redemption codes.

Session-authenticated (Django auth) with CSRF on every form; a user sees only their own rows, staff
included (they have Django admin for everyone's). Views parse, call one billing function, and render.
"""

import csv
from datetime import date, datetime, time, timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from billing import pricing
from billing.accounts import api_keys, invitations
from billing.accounts.signup import INVITE_SESSION_KEY
from billing.console import charts
from billing.console.forms import KeyForm, KeyStatusForm, RedeemForm, TopUpForm, UsageFilterForm
from billing.logs import LogFilter, log_csv_rows, log_stats, visible_logs
from billing.models import ApiKey, Redemption, TopUpOrder
from billing.payments import qr, redemptions, topup, wechatpay
from billing.payments.wechatpay import PaymentsDisabled, WeChatPayError
from gateway_project.errors import describe

LOGIN_URL = "account_login"
PAGE_SIZE = 50
CHART_DAYS = 30
console_page = login_required(login_url=LOGIN_URL)


def _usd(quota: int) -> str:
    return f"${quota / pricing.current().quota_per_unit:,.2f}"


def _chart(user_id: int, token_id: int | None = None, model: str | None = None) -> dict:
    return charts.chart(charts.usage_by_day(user_id, CHART_DAYS, token_id=token_id, model=model))


@require_GET
@console_page
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "balance_usd": _usd(user.quota),
        "used_usd": _usd(user.used_quota),
        "key_count": ApiKey.objects.filter(user=user).count(),
        "chart": _chart(user.pk),
    }
    return render(request, "console/home.html", context)


@never_cache
@console_page
def keys(request: HttpRequest) -> HttpResponse:
    form = KeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            new_key = api_keys.create_key(request.user, actor=request.user, **form.key_fields())[1]
        except (ValidationError, PermissionDenied) as refused:
            form.add_error(None, describe(refused) if isinstance(refused, ValidationError) else str(refused))
        else:
            form = KeyForm()
    # A new key is shown on this answer only: not through a message, which would keep it in a cookie or the
    # session until shown, and not cached (never_cache).
    own = ApiKey.objects.filter(user=request.user).order_by("-id")
    context = {"form": form, "keys": own, "now": timezone.now(), "new_key": new_key}
    return render(request, "console/keys.html", context)


@require_POST
@console_page
def key_status(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects.select_related("user"), pk=key_id, user=request.user)
    form = KeyStatusForm(request.POST)
    if form.is_valid():
        try:
            api_keys.update_key(key, {"status": form.cleaned_data["status"]}, actor=request.user)
        except ApiKey.DoesNotExist:  # deleted meanwhile (another tab)
            raise Http404 from None
        said = (
            _("Key %(key)s is now enabled.")
            if key.status == ApiKey.Status.ENABLED
            else _("Key %(key)s is now disabled.")
        )
        messages.info(request, said % {"key": key.name or key.key_hint})
    return redirect("console:keys")


@require_POST
@console_page
def key_delete(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=key_id, user=request.user)
    # 404 if another tab deleted it first
    api_keys.delete_key(ApiKey.objects.filter(user=request.user), key.pk, actor=request.user)
    messages.info(request, _("Key %(key)s deleted.") % {"key": key.name or key.key_hint})
    return redirect("console:keys")


def _day_bounds(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    start = timezone.make_aware(datetime.combine(since, time.min)) if since else None
    end = timezone.make_aware(datetime.combine(until, time.min)) + timedelta(days=1, microseconds=-1) if until else None
    return start, end


def _usage_filter(request: HttpRequest) -> tuple[UsageFilterForm, LogFilter]:
    """The usage page's filters (the CSV export takes the same): the form and the rows it selects."""
    form = UsageFilterForm(request.user, request.GET or None)
    chosen = form.cleaned_data if form.is_valid() else {}
    since, until = _day_bounds(chosen.get("since"), chosen.get("until"))
    where = LogFilter(
        user_id=request.user.pk,
        token_id=chosen.get("token"),
        model=chosen.get("model") or None,
        type=chosen.get("type") or None,
        since=since,
        until=until,
    )
    return form, where


@require_GET
@console_page
def usage(request: HttpRequest) -> HttpResponse:
    form, where = _usage_filter(request)
    page = Paginator(visible_logs(request.user, where), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "stats": log_stats(request.user, where),
        "chart": _chart(request.user.pk, token_id=where.token_id, model=where.model),
    }
    return render(request, "console/usage.html", context)


class _Line:
    """csv.writer's file: hands each line back instead of keeping it."""

    def write(self, line: str) -> str:
        return line


@require_GET
@console_page
def usage_csv(request: HttpRequest) -> StreamingHttpResponse:
    """Every row the usage page's filters select, newest first, streamed as CSV."""
    where = _usage_filter(request)[1]
    writer = csv.writer(_Line())
    lines = (writer.writerow(row) for row in log_csv_rows(visible_logs(request.user, where)))
    headers = {"Content-Disposition": 'attachment; filename="usage.csv"'}
    return StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8", headers=headers)


@console_page
def topup_page(request: HttpRequest) -> HttpResponse:
    try:
        wechatpay.load_config()
    except PaymentsDisabled as disabled:
        return render(request, "console/topup.html", {"disabled": str(disabled)})
    form = TopUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            order = topup.create_order(request.user, form.cleaned_data["amount"])
        except ValidationError as refused:
            form.add_error("amount", describe(refused))
        except (PaymentsDisabled, WeChatPayError) as failure:
            form.add_error(None, str(failure))
        else:
            return redirect("console:topup-order", out_trade_no=order.out_trade_no)
    context = {
        "form": form,
        "min_yuan": settings.TOPUP_MIN_YUAN,
        "quota_per_yuan": topup.quota_for(1),
        "orders": TopUpOrder.objects.filter(user=request.user).order_by("-created_at")[:20],
    }
    return render(request, "console/topup.html", context)


@require_GET
@console_page
def topup_order(request: HttpRequest, out_trade_no: str) -> HttpResponse:
    order = get_object_or_404(TopUpOrder, out_trade_no=out_trade_no, user=request.user)
    pending = order.status == TopUpOrder.Status.PENDING and order.code_url
    context = {
        "order": order,
        "qr_svg": qr.svg(order.code_url) if pending else "",
        "status_labels": dict(TopUpOrder.Status.choices),  # for the page's poll, which gets the status's value
    }
    return render(request, "console/topup_order.html", context)


@require_GET
@console_page
def topup_status(request: HttpRequest, out_trade_no: str) -> JsonResponse:
    """What the order page polls; the same shape as GET /api/topup/wechat/{out_trade_no}."""
    order = get_object_or_404(TopUpOrder, out_trade_no=out_trade_no, user=request.user)
    return JsonResponse({"status": order.status, "quota": order.quota}, headers={"Cache-Control": "no-store"})


@console_page
def redeem(request: HttpRequest) -> HttpResponse:
    form = RedeemForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            credited = redemptions.redeem(request.user, form.cleaned_data["key"])
        except Redemption.DoesNotExist:
            form.add_error("key", _("No such redemption code."))
        except redemptions.AlreadyRedeemed:
            form.add_error("key", _("This code has already been used."))
        else:
            added = {"quota": f"{credited:,}", "usd": _usd(credited)}
            messages.success(request, _("Redeemed: %(quota)s quota (%(usd)s) added to your account.") % added)
            return redirect("console:redeem")
    return render(request, "console/redeem.html", {"form": form})


@require_GET
@console_page
def account(request: HttpRequest) -> HttpResponse:
    """Who one is, and one's invite link with what it brought; allauth's pages (email, password, linked accounts,
    two-factor) are linked from here."""
    link = request.build_absolute_uri(reverse("console:invite", args=[invitations.invite_code(request.user)]))
    context = {
        "invite_link": link,
        "stats": invitations.invited_stats(request.user),
        "quota_for_inviter": settings.QUOTA_FOR_INVITER,
        "quota_for_invitee": settings.QUOTA_FOR_INVITEE,
        "email": EmailAddress.objects.get_primary_email(request.user),
    }
    return render(request, "console/account.html", context)


@require_GET
def invite(request: HttpRequest, code: str) -> HttpResponse:
    """An invite link: remembers the code for the sign-up (by form or a first social sign-in) and goes there."""
    request.session[INVITE_SESSION_KEY] = code
    return redirect("account_signup")
