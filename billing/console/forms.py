"""Forms of the user console. They only parse; billing.accounts.api_keys, billing.payments.topup and
billing.payments.redemptions apply the rules."""

from django import forms

from billing.models import ApiKey, Log, User

DATETIME_LOCAL = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


def split_list(text: str) -> list[str] | None:
    """`"a, b,,c"` -> `["a", "b", "c"]`; nothing -> None (no limit)."""
    items = [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]
    return items or None


class KeyForm(forms.Form):
    name = forms.CharField(max_length=64, required=False)
    unlimited_quota = forms.BooleanField(required=False, label="Unlimited (uses your account's quota)")
    remain_quota = forms.IntegerField(min_value=0, initial=0, required=False, label="Quota")
    expires_at = forms.DateTimeField(
        required=False,
        input_formats=DATETIME_LOCAL,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        label="Expires",
    )
    models = forms.CharField(required=False, help_text="Comma-separated model names; empty = all models")
    allow_ips = forms.CharField(required=False, label="Allowed IPs", help_text="Comma-separated IPs or CIDRs")

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
    token = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Key")
    model = forms.CharField(required=False, max_length=128)
    type = forms.ChoiceField(required=False, choices=[("", "any"), *Log.Type.choices])
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, user: User, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        own = ApiKey.objects.filter(user=user).order_by("name").values_list("pk", "name", "key_hint")
        self.fields["token"].choices = [
            ("", "all keys"),
            *((pk, f"{name or 'key'} ({hint})") for pk, name, hint in own),
        ]


class TopUpForm(forms.Form):
    amount = forms.IntegerField(min_value=1, label="Amount (CNY)")


class RedeemForm(forms.Form):
    key = forms.CharField(max_length=64, label="Redemption code")
