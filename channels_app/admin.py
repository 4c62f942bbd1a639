"""Django admin for channels: the key is set through a write-only field and stored encrypted; only its
masked hint is ever shown. Adding, changing, switching and deleting channels writes audit entries."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from billing.audit import AuditedAdmin
from channels_app import channel_types, channels
from channels_app.models import Channel
from gateway_project.admin_tools import STORABLE_JSON, SaveChangedFieldsMixin
from relay import channel_balance, channel_test


class ChannelForm(forms.ModelForm):
    type = forms.ChoiceField(choices=channel_types.choices, initial="openai", label=_("Type"))
    new_key = forms.CharField(
        label=pgettext_lazy("upstream", "Key"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("The upstream API key; stored encrypted. Leave empty to keep the current key."),
    )

    class Meta:
        model = Channel
        fields = "__all__"

    def clean(self) -> dict:
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("new_key"):
            self.add_error("new_key", _("A new channel needs its upstream key."))
        key = cleaned.get("new_key") or (self.instance.key if self.instance.pk else "")
        if key and channels.type_rule(cleaned.get("type")):
            for field, problem in channels.type_problems(cleaned["type"], key, cleaned.get("config")).items():
                self.add_error("new_key" if field == "key" else field, problem)
        return cleaned

    def _post_clean(self) -> None:
        # Set the key before model validation: key_encrypted is required.
        if self.cleaned_data.get("new_key"):
            self.instance.key = self.cleaned_data["new_key"]
        super()._post_clean()

    def _update_errors(self, errors: ValidationError) -> None:
        # The model's validation names the key `key`; this form sets it through `new_key`.
        if hasattr(errors, "error_dict") and "key" in errors.error_dict:
            errors.error_dict["new_key"] = errors.error_dict.pop("key")
        super()._update_errors(errors)


class TypeFilter(admin.SimpleListFilter):
    """The registered channel types (Channel.type has no choices: channels_app.channel_types)."""

    title = _("type")
    parameter_name = "type__exact"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return channel_types.choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet[Channel]) -> QuerySet[Channel]:
        return queryset.filter(type=self.value()) if self.value() else queryset


@admin.register(Channel)
class ChannelAdmin(AuditedAdmin, SaveChangedFieldsMixin, admin.ModelAdmin):
    form = ChannelForm
    audit_subject = channels.AUDITED
    form_to_model = {"new_key": "key_encrypted"}
    formfield_overrides = STORABLE_JSON
    list_display = (
        "id",
        "name",
        "type_label",
        "status",
        "priority",
        "weight",
        "model_list",
        "used_quota",
        "response_time_ms",
        "balance",
    )
    list_display_links = ("id", "name")
    list_filter = (TypeFilter, "status", "auto_ban")
    search_fields = ("name", "base_url")
    readonly_fields = ("key_hint", "status_reason", "used_quota", "response_time_ms", "balance", "created_at")
    fields = (
        "name",
        "type",
        "new_key",
        "key_hint",
        "base_url",
        "models",
        "model_mapping",
        "status_code_mapping",
        "groups",
        "priority",
        "weight",
        "status",
        "status_reason",
        "auto_ban",
        "test_model",
        "config",
        "used_quota",
        "response_time_ms",
        "balance",
        "created_at",
    )
    actions = ("enable", "disable", "test", "update_balance")

    @admin.display(description=_("type"), ordering="type")
    def type_label(self, channel: Channel) -> str:
        kind = channel_types.find(channel.type)
        return kind.label if kind else channel.type

    @admin.display(description=_("models"))
    def model_list(self, channel: Channel) -> str:
        shown = ", ".join(channel.models[:5])
        return shown + (f" (+{len(channel.models) - 5})" if len(channel.models) > 5 else "")

    @admin.action(description=_("Enable selected channels"))
    def enable(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        changed = channels.set_status(queryset.values_list("pk", flat=True), Channel.Status.ENABLED, actor=request.user)
        messages.success(request, _("%(count)d channel(s) enabled") % {"count": changed})

    @admin.action(description=_("Test selected channels (one small real request each)"))
    def test(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        found = list(queryset)
        for channel, result in zip(found, channel_test.probe_channels(found), strict=True):
            level = messages.SUCCESS if result.success else messages.ERROR
            self.message_user(request, f"{channel}: {result.message}", level)

    @admin.action(description=_("Update the balance of selected channels (OpenAI-compatible upstreams)"))
    def update_balance(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            try:
                left = f"${channel_balance.update_balance(channel):,.2f}"
                self.message_user(request, _("%(channel)s: %(left)s left") % {"channel": channel, "left": left})
            except channel_balance.BalanceUnavailable as unavailable:
                self.message_user(request, f"{channel}: {unavailable}", messages.WARNING)

    @admin.action(description=_("Disable selected channels"))
    def disable(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        reason = f"disabled by {request.user.get_username()} in admin"
        ids = queryset.values_list("pk", flat=True)
        changed = channels.set_status(ids, Channel.Status.DISABLED, reason, actor=request.user)
        messages.success(request, _("%(count)d channel(s) disabled") % {"count": changed})
