"""Django admin for users, keys, access tokens, prices, the (read-only) ledger and the (read-only) audit trail.

Secrets never appear: keys, access tokens and redemption codes show only their hint or name, and new ones
are shown once, on the page that answers their creation (never through a message, which Django keeps in a
cookie or the session until it is shown). Quota changes go through
billing.accounts.users.adjust_quota so each one leaves a manage log; top-up orders are read-only. Adding,
changing and deleting users, keys and prices writes audit entries (billing.audit.AuditedAdmin).
"""

from dataclasses import asdict
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from billing import audit, price_list, pricing
from billing.accounts import api_keys, users
from billing.audit import AuditedAdmin
from billing.models import (
    LOG_TOKEN_FIELDS,
    AccessToken,
    ApiKey,
    AuditEntry,
    Log,
    PriceTable,
    Redemption,
    Reservation,
    TopUpOrder,
    User,
)
from billing.payments import redemptions, topup
from billing.payments.wechatpay import PaymentsDisabled, WeChatPayError
from billing.quota import QuotaExceeded
from gateway_project.admin_tools import STORABLE_JSON, SaveChangedFieldsMixin
from gateway_project.safe_text import MODEL_NAME_RULE, is_model_name


class UserForm(UserChangeForm):
    quota_delta = forms.IntegerField(
        required=False,
        label=_("Quota delta"),
        help_text=_("Quota to add (negative removes); written to the log as a manage entry"),
    )
    quota_reason = forms.CharField(required=False, max_length=500, label=_("Quota reason"))
    actor: User | None = None  # who is editing (UserAdmin.get_form)

    def clean(self) -> dict:
        cleaned = super().clean()
        switches = {name: cleaned[name] for name in ("is_active", "is_staff") if name in cleaned}
        try:
            users.check_own_account(self.instance, switches, self.actor)
        except PermissionDenied as refused:
            raise ValidationError(str(refused)) from None
        return cleaned


class ApiKeyForm(forms.ModelForm):
    def clean(self) -> dict:
        data = super().clean()
        if data.get("user") is not None:  # else the form already says the user is missing
            api_keys.check_key_group(data.get("group"), data["user"])
        return data


@admin.register(User)
class UserAdmin(AuditedAdmin, SaveChangedFieldsMixin, BaseUserAdmin):
    form = UserForm
    audit_subject = users.AUDITED
    list_display = ("username", "group", "quota", "used_quota", "request_count", "is_staff", "is_active")
    list_filter = ("group", "is_staff", "is_active")
    search_fields = ("username", "email")
    readonly_fields = ("quota", "used_quota", "request_count", "last_login", "date_joined")
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        (_("Gateway"), {"fields": ("group", "quota", "used_quota", "request_count", "quota_delta", "quota_reason")}),
        (_("Rate limits (empty = the group's, 0 = none)"), {"fields": ("rpm_limit", "tpm_limit")}),
    )

    def get_form(self, request: HttpRequest, obj: User | None = None, **kwargs) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, **kwargs)
        form.actor = request.user  # a class made for this request
        return form

    def save_model(self, request: HttpRequest, obj: User, form: forms.Form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        delta = form.cleaned_data.get("quota_delta")
        if delta:
            try:
                now = users.adjust_quota(obj, delta, form.cleaned_data.get("quota_reason", ""), actor=request.user)
            except QuotaExceeded as refused:
                messages.error(request, str(refused))
            else:
                messages.success(
                    request,
                    _("%(user)s: quota %(delta)+d, now %(now)d") % {"user": obj.username, "delta": delta, "now": now},
                )

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        # Django's password form saves the user itself, past save_model.
        watched = [int(id)] if id.isdigit() else []  # anything else is Django's own 404
        with audit.tracked(request.user, users.AUDITED, *watched):
            return super().user_change_password(request, id, form_url)


def secret_page(
    request: HttpRequest, model_admin: admin.ModelAdmin, title: str, secrets: list[str], next_url: str, next_label: str
) -> TemplateResponse:
    """The answer to the form that created `secrets`: the one time they are shown (admin pages are never cached)."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "secrets": secrets,
        "next_url": next_url,
        "next_label": next_label,
    }
    return TemplateResponse(request, "admin/secret_shown_once.html", context)


class ShowsNewSecret:
    """For rows whose secret is made when they are added: `save_model` keeps it in `obj.new_secret`, and the
    answer to the add form shows it instead of redirecting."""

    secret_name = ""

    def response_add(self, request: HttpRequest, obj, post_url_continue: str | None = None) -> HttpResponse:
        change_url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
        title = _("The new %(secret)s") % {"secret": self.secret_name}
        return secret_page(request, self, title, [obj.new_secret], change_url, f"{obj} ->")


def key_pages_at_their_old_path(request: HttpRequest, rest: str) -> HttpResponse:
    """/admin/billing/token/... was the API keys' admin before the model was named ApiKey: a 308 keeps bookmarks,
    scripts and posted forms working (the method and body are kept)."""
    query = request.META.get("QUERY_STRING", "")
    return HttpResponsePermanentRedirect(
        f"/admin/billing/apikey/{rest}" + (f"?{query}" if query else ""), preserve_request=True
    )


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin, ShowsNewSecret, SaveChangedFieldsMixin, admin.ModelAdmin):
    form = ApiKeyForm
    audit_subject = api_keys.AUDITED
    secret_name = _("key")
    formfield_overrides = STORABLE_JSON
    list_display = (
        "name",
        "user",
        "key_hint",
        "status",
        "remain_quota",
        "unlimited_quota",
        "used_quota",
        "expires_at",
        "accessed_at",
    )
    list_filter = ("status", "unlimited_quota")
    search_fields = ("name", "key_hint", "user__username")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    readonly_fields = ("key_hint", "used_quota", "created_at", "accessed_at")
    fields = (
        "user",
        "name",
        "key_hint",
        "status",
        "remain_quota",
        "unlimited_quota",
        "used_quota",
        "expires_at",
        "model_limits",
        "allow_ips",
        "group",
        "rpm_limit",
        "tpm_limit",
        "created_at",
        "accessed_at",
    )

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.Form, change: bool) -> None:
        if not change:
            obj.new_secret = obj.set_key()
        super().save_model(request, obj, form, change)


@admin.register(AccessToken)
class AccessTokenAdmin(ShowsNewSecret, admin.ModelAdmin):
    secret_name = _("access token")
    list_display = ("name", "user", "created_at")
    search_fields = ("name", "user__username")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    fields = ("user", "name", "created_at")
    readonly_fields = ("created_at",)

    def save_model(self, request: HttpRequest, obj: AccessToken, form: forms.Form, change: bool) -> None:
        if not change:
            obj.new_secret = obj.set_token()
        super().save_model(request, obj, form, change)


class ModelPriceForm(forms.Form):
    """One model's price in USD, as billing.price_list shows and stores it."""

    model = forms.CharField(label=_("Model"), max_length=128)
    input = forms.FloatField(label=_("Input, USD per 1M tokens"), min_value=0, required=False)
    output = forms.FloatField(label=_("Output, USD per 1M tokens"), min_value=0, required=False)
    cache_read = forms.FloatField(
        label=_("Cache read, USD per 1M tokens"), min_value=0, required=False, help_text=_("Empty: billed as input.")
    )
    cache_write_5m = forms.FloatField(
        label=_("Cache write (5 min), USD per 1M tokens"),
        min_value=0,
        required=False,
        help_text=_("Empty: billed as input."),
    )
    cache_write_1h = forms.FloatField(
        label=_("Cache write (1 hour), USD per 1M tokens"),
        min_value=0,
        required=False,
        help_text=_("Empty: billed as input."),
    )
    per_call = forms.FloatField(
        label=_("USD per call"),
        min_value=0,
        required=False,
        help_text=_("A fixed price per request instead of token prices (Midjourney, Suno, image models)."),
    )

    def clean_model(self) -> str:
        model = self.cleaned_data["model"].strip()
        if not is_model_name(model):
            raise ValidationError(_("The model name %(rule)s.") % {"rule": MODEL_NAME_RULE})
        return model

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("per_call") is None:
            for name in ("input", "output"):
                if cleaned.get(name) is None and name not in self.errors:
                    self.add_error(name, _("Enter a price, or a price per call below."))
        return cleaned

    def model_price(self) -> price_list.ModelPrice:
        return price_list.ModelPrice(overridden=True, **self.cleaned_data)


@admin.register(PriceTable)
class PriceTableAdmin(AuditedAdmin, admin.ModelAdmin):
    """The single price row (pk 1); saving it reprices every instance at once. "Model prices" shows every
    model's effective price in USD and edits one model at a time."""

    audit_subject = pricing.AUDITED
    list_display = ("__str__", "quota_per_unit", "updated_at")
    formfield_overrides = STORABLE_JSON

    def get_urls(self) -> list[URLPattern]:
        pages = [
            path("model-prices/", self.admin_site.admin_view(self.model_prices_view), name="billing_model_prices"),
            path(
                "model-prices/edit/",
                self.admin_site.admin_view(self.edit_model_price_view),
                name="billing_model_price_edit",
            ),
        ]
        return pages + super().get_urls()

    def model_prices_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        search = request.GET.get("q", "").strip()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Model prices"),
            "opts": self.opts,
            "search": search,
            "prices": price_list.price_list(search),
            "can_change": self.has_change_permission(request),
            "quota_per_unit": f"{pricing.current().quota_per_unit:,}",
        }
        return TemplateResponse(request, "admin/billing/pricetable/model_prices.html", context)

    def edit_model_price_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        model = request.GET.get("model", "")
        current = next((price for price in price_list.price_list() if price.model == model), None)
        form = ModelPriceForm(request.POST or None, initial=asdict(current) if current else {"model": model})
        if request.method == "POST" and form.is_valid():
            price_list.set_model_price(form.cleaned_data["model"], form.model_price(), actor=request.user)
            messages.success(request, _("The price of %(model)s is saved.") % {"model": form.cleaned_data["model"]})
            listing = reverse("admin:billing_model_prices")
            return HttpResponseRedirect(f"{listing}?{urlencode({'q': form.cleaned_data['model']})}")
        context = {
            **self.admin_site.each_context(request),
            "title": _("Price of %(model)s") % {"model": model} if model else _("Add a model price"),
            "opts": self.opts,
            "form": form,
        }
        return TemplateResponse(request, "admin/billing/pricetable/edit_model_price.html", context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not PriceTable.objects.exists() and super().has_add_permission(request)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        # A new row replaces the built-in tables whole, so start from them rather than from empty maps.
        return pricing.defaults()

    def save_model(self, request: HttpRequest, obj: PriceTable, form: forms.Form, change: bool) -> None:
        obj.pk = 1
        super().save_model(request, obj, form, change)
        pricing.invalidate()

    def delete_model(self, request: HttpRequest, obj: PriceTable) -> None:
        super().delete_model(request, obj)
        pricing.invalidate()


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Log)
class LogAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "type",
        "user_id",
        "token_name",
        "channel_id",
        "model",
        *LOG_TOKEN_FIELDS,
        "quota",
        "use_time_ms",
        "is_stream",
    )
    list_filter = ("type", "is_stream", "model", "created_at")
    date_hierarchy = "created_at"
    search_fields = ("request_id", "model", "token_name", "content")
    show_full_result_count = False  # the ledger grows large; COUNT(*) on every page is not worth it


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Who changed which channel, key, user, prices or quota, from what to what (billing.audit)."""

    list_display = ("created_at", "actor_name", "action", "object_type", "object_id", "summary")
    SUMMARY_CHARACTERS = 200
    list_filter = ("object_type", "action", "actor_name")
    search_fields = ("actor_name",)
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description=_("changes"))
    def summary(self, entry: AuditEntry) -> str:
        said = "; ".join(
            f"{name}: {change}" if isinstance(change, str) else f"{name}: {change[0]!r} -> {change[1]!r}"
            for name, change in entry.changes.items()
        )
        return Truncator(said).chars(self.SUMMARY_CHARACTERS)


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ("request_id", "state", "user_id", "token_id", "amount", "unlimited", "created_at")
    list_filter = ("state", "unlimited")
    search_fields = ("request_id",)
    date_hierarchy = "created_at"


class RedemptionBatchForm(forms.Form):
    name = forms.CharField(
        max_length=64, label=_("Name"), help_text=_("Batch label, shown in the ledger when a code is redeemed")
    )
    quota = forms.IntegerField(min_value=1, label=_("Quota"), help_text=_("Quota each code credits"))
    count = forms.IntegerField(min_value=1, max_value=redemptions.MAX_BATCH, initial=1, label=_("Count"))


@admin.register(Redemption)
class RedemptionAdmin(admin.ModelAdmin):
    """Adding creates a batch; its codes are shown once on the page that answers, then only their hints exist."""

    list_display = ("name", "code_hint", "quota", "status", "created_at", "used_by", "used_at")
    list_filter = ("status", "name")
    search_fields = ("name", "code_hint", "used_by__username")
    list_select_related = ("used_by",)
    date_hierarchy = "created_at"

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RedemptionBatchForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                codes = redemptions.create_batch(**form.cleaned_data, actor=request.user)
            except ValidationError as refused:
                form.add_error(None, refused)
            else:
                title = _("%(count)d new redemption code(s) of %(batch)r") % {
                    "count": len(codes),
                    "batch": form.cleaned_data["name"],
                }
                changelist = reverse("admin:billing_redemption_changelist")
                return secret_page(request, self, title, codes, changelist, _("All redemption codes ->"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Create redemption codes"),
            "opts": self.opts,
            "form": form,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/billing/redemption/create_batch.html", context)


@admin.register(TopUpOrder)
class TopUpOrderAdmin(ReadOnlyAdmin):
    list_display = (
        "out_trade_no",
        "user",
        "amount_yuan",
        "quota",
        "status",
        "transaction_id",
        "created_at",
        "paid_at",
        "closed_at",
    )
    list_filter = ("status", "created_at")
    search_fields = ("out_trade_no", "transaction_id", "user__username")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    actions = ["check_with_wechat_pay"]

    @admin.action(description=_("Check selected pending orders with WeChat Pay"))
    def check_with_wechat_pay(self, request: HttpRequest, queryset) -> None:
        changed = 0
        for out_trade_no in queryset.filter(status=TopUpOrder.Status.PENDING).values_list("out_trade_no", flat=True):
            try:
                changed += topup.reconcile_order(out_trade_no)
            except (PaymentsDisabled, WeChatPayError) as failure:
                messages.error(request, f"{out_trade_no}: {failure}")
        messages.info(
            request, _("%(count)d order(s) paid or closed after checking with WeChat Pay.") % {"count": changed}
        )
