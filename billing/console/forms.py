"""Forms of the user console. They only parse; billing.accounts.api_keys, billing.payments.topup and
billing.payments.redemptions apply the rules."""

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.models import ApiKey, Log, User

DATETIME_LOCAL = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


def split_list(text: str) -> list[str] | None:
    """`"a, b,,c"` -> `["a", "b", "c"]`; nothing -> None (no limit)."""
    items = [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]
    return items or None


class KeyForm(forms.Form):
    name = forms.CharField(max_length=64, required=False, label=_("Name"))
    unlimited_quota = forms.BooleanField(required=False, label=_("Unlimited (uses your account's quota)"))
    remain_quota = forms.IntegerField(min_value=0, initial=0, required=False, label=_("Quota"))
    expires_at = forms.DateTimeField(
        required=False,
        input_formats=DATETIME_LOCAL,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        label=_("Expires"),
    )
    models = forms.CharField(
        required=False, label=_("Models"), help_text=_("Comma-separated model names; empty = all models")
    )
    allow_ips = forms.CharField(required=False, label=_("Allowed IPs"), help_text=_("Comma-separated IPs or CIDRs"))

    def key_fields(self) -> dict:
        """Keyword arguments for billing.accounts.api_keys.create_key."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "unlimited_quota": data["unlimited_quota"],
            "remain_quota": data["remain_quota"] or 0,
            "expires_at": data["expires_at"],
            "models": split_list(data["models"]),
            "allow_ips": split_list(data["allow_ips"]),
        }


class KeyStatusForm(forms.Form):
    status = forms.ChoiceField(choices=ApiKey.Status.choices)


class UsageFilterForm(forms.Form):
    token = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label=_("Key"))
    model = forms.CharField(required=False, max_length=128, label=_("Model"))
    type = forms.ChoiceField(required=False, choices=[("", _("any")), *Log.Type.choices], label=_("Type"))
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label=_("Since"))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label=_("Until"))

    def __init__(self, user: User, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        own = ApiKey.objects.filter(user=user).order_by("name").values_list("pk", "name", "key_hint")
        self.fields["token"].choices = [
            ("", _("all keys")),
            *((pk, f"{name or _('key')} ({hint})") for pk, name, hint in own),
        ]


class TopUpForm(forms.Form):
    amount = forms.IntegerField(min_value=1, label=_("Amount (CNY)"))


class RedeemForm(forms.Form):
    key = forms.CharField(max_length=64, label=_("Redemption code"))
