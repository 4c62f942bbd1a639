"""Django admin for channels: the key is set through a write-only field and stored encrypted; only its
masked hint is ever shown. Adding, changing, switching and deleting channels writes audit entries."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from billing.audit import AuditedAdmin
from channels_app import channel_types, channels, keys
from channels_app.models import Channel, ChannelKey
from gateway_project.admin_tools import STORABLE_JSON, NameListField, SaveChangedFieldsMixin
from relay import channel_balance, channel_models, channel_test


class SecretTextarea(forms.Textarea):
    """A text box for secrets: what was typed is never sent back to the browser (as a password box)."""

    def format_value(self, value: object) -> None:
        return None


class ChannelForm(forms.ModelForm):
    type = forms.ChoiceField(choices=channel_types.choices, initial="openai", label=_("Type"))
    new_key = forms.CharField(
        label=pgettext_lazy("upstream", "Keys"),
        required=False,
        strip=True,
        widget=SecretTextarea(attrs={"rows": 3, "cols": 60, "autocomplete": "off"}),
        help_text=_(
            "The upstream API key, or several: one per line, or a JSON list; stored encrypted. Entering keys "
            "replaces every stored key. Leave empty to keep the current keys."
        ),
    )
    add_keys = forms.CharField(
        label=pgettext_lazy("upstream", "Add keys"),
        required=False,
        strip=True,
        widget=SecretTextarea(attrs={"rows": 2, "cols": 60, "autocomplete": "off"}),
        help_text=_("More keys for this channel, one per line, kept with their own status next to the current ones."),
    )
    models = NameListField(
        label=_("Models"),
        required=False,  # a new channel left empty gets its type's models (the placeholder shows them)
        help_text=_(
            "Model names separated by commas or lines, e.g. gpt-4o, gpt-4o-mini. "
            "A name ending in * serves every model that starts with it."
        ),
    )
    groups = NameListField(
        label=_("Groups"),
        initial=["default"],
        help_text=_("The user groups this channel serves, separated by commas or lines, e.g. default, vip."),
    )

    class Meta:
        model = Channel
        fields = "__all__"
        widgets = {
            name: forms.Textarea(attrs={"rows": 3, "cols": 60})
            for name in ("model_mapping", "status_code_mapping", "config")
        }
        help_texts = {
            "model_mapping": _(
                'JSON: the model a client asks for → the name the upstream knows, e.g. {"gpt-4o": "gpt-4o-2024-08-06"}.'
            ),
            "status_code_mapping": _(
                'JSON: an upstream status → the status clients get (and retries follow), e.g. {"400": 500}.'
            ),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.entered_keys: list[str] = []  # by clean(): the keys typed to replace the stored ones
        self.added_keys: list[str] = []  # and those typed to add to them
        # A type's defaults: the placeholders of the fields a new channel may leave empty (the page's script
        # changes them with the type), and what `clean` fills in. A type and a key make a channel.
        defaults = {
            slug: {"name": slug, "base_url": kind.base_url, "models": ", ".join(kind.models)}
            for slug, kind in channel_types.registered().items()
        }
        self.fields["type"].widget.attrs["data-defaults"] = json.dumps(defaults)
        self.fields["name"].required = False
        shown = defaults.get(str(self["type"].value()), {})
        for name in ("name", "base_url", "models"):
            self.fields[name].widget.attrs["placeholder"] = shown.get(name, "")

    def full_clean(self) -> None:
        stored = self.instance.key_encrypted
        super().full_clean()
        if not self.errors:
            return
        self.instance.key_encrypted = stored  # the page shows the hint of the key kept, not of the one typed
        # A password box is never filled in again, so a key typed into a form that failed is gone.
        if self.data.get(self.add_prefix("new_key")) and "new_key" not in self.errors:
            self.add_error("new_key", _("The key was not kept; enter it again."))

    def clean(self) -> dict:
        cleaned = super().clean()
        kind = channel_types.find(str(cleaned.get("type")))
        if kind is not None:
            cleaned["name"] = cleaned.get("name") or kind.slug
            if not self.instance.pk and cleaned.get("models") == []:
                cleaned["models"] = list(kind.models)
        if cleaned.get("models") == []:
            self.add_error("models", _("List at least one model the channel serves."))
        if not self.instance.pk and not cleaned.get("new_key"):
            self.add_error("new_key", _("A new channel needs its upstream key."))
        if self.instance.pk and cleaned.get("add_keys") and cleaned.get("new_key"):
            self.add_error("add_keys", _("Either replace the keys or add keys, not both at once."))
        self.entered_keys = self.keys_of("new_key", cleaned)
        self.added_keys = self.keys_of("add_keys", cleaned)
        entered = self.entered_keys or self.added_keys or ([self.instance.key] if self.instance.pk else [])
        if channels.type_rule(cleaned.get("type")):
            for key in entered:
                for field, problem in channels.type_problems(cleaned["type"], key, cleaned.get("config")).items():
                    self.add_error("new_key" if field == "key" else field, problem)
        return cleaned

    def keys_of(self, field: str, cleaned: dict) -> list[str]:
        """The keys typed into `field`, each checked against the channel's type; [] when none or not valid."""
        if not cleaned.get(field):
            return []
        probe = Channel(type=cleaned.get("type") or self.instance.type)
        try:
            found = keys.parse_keys(cleaned[field], whole=not probe.key_in_headers)
            keys.check_keys(probe, found)
        except ValidationError as invalid:
            self.add_error(field, invalid.message_dict["key"])
            return []
        return found

    def _post_clean(self) -> None:
        # Set the key before model validation: key_encrypted is required.
        if self.entered_keys:
            self.instance.key = self.entered_keys[0]
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
        "row_tools",
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
    readonly_fields = ("key_table", "status_reason", "used_quota", "response_time_ms", "balance", "created_at")
    fields = (
        "name",
        "type",
        "new_key",
        "key_table",
        "add_keys",
        "key_mode",
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

    def save_model(self, request: HttpRequest, channel: Channel, form: ChannelForm, change: bool) -> None:
        super().save_model(request, channel, form, change)  # in the admin's transaction, as the keys below
        if form.cleaned_data.get("new_key"):
            keys.store(channel, form.entered_keys)
        if form.added_keys:
            keys.add_keys(channel, "\n".join(form.added_keys), request.user)

    @admin.display(description=pgettext_lazy("upstream", "keys"))
    def key_table(self, channel: Channel) -> str:
        """Each key, masked, with its status and the buttons that switch or delete it (they post the page's own
        form, with its CSRF token, to the key's URL)."""
        if not channel.pk:
            return "-"
        rows = format_html_join("", "<tr>{}</tr>", ((self.key_row(channel, row),) for row in channel.key_list()))
        head = format_html(
            "<tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr>",
            pgettext_lazy("upstream", "key"),
            _("status"),
            _("status reason"),
            _("changed at"),
        )
        return format_html('<table class="channel-keys">{}{}</table>', head, rows)

    def key_row(self, channel: Channel, row: ChannelKey) -> str:
        buttons = format_html_join(
            " ",
            '<button type="submit" class="button channel-key-{}" formmethod="post" formaction="{}">{}</button>',
            (
                (action, reverse("admin:channels_app_channel_key", args=[channel.pk, row.position, action]), label)
                for action, label in self.key_actions(row)
            ),
        )
        changed = date_format(localtime(row.changed_at), "SHORT_DATETIME_FORMAT") if row.pk else ""
        return format_html(
            "<td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            row.position,
            row.key_hint,
            row.get_status_display(),
            row.status_reason,
            changed,
            buttons,
        )

    @staticmethod
    def key_actions(row: ChannelKey) -> list[tuple[str, str]]:
        if not row.pk:  # a channel of one key: switch the channel itself
            return []
        switch = ("disable", _("Disable")) if row.status == Channel.Status.ENABLED else ("enable", _("Enable"))
        return [switch, ("delete", _("Delete"))]

    def key_view(self, request: HttpRequest, channel_id: int, position: int, action: str) -> HttpResponse:
        """A key's Enable, Disable or Delete button, then back to the channel's page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        channel = self.changeable(request, channel_id)
        try:
            if action == "delete":
                keys.delete_key(channel, position, request.user)
            else:
                status = Channel.Status.ENABLED if action == "enable" else Channel.Status.DISABLED
                keys.set_status(channel, position, status, request.user)
        except ValidationError as refused:
            messages.error(request, "; ".join(refused.messages))
        else:
            done = {"enable": _("Key #%(position)d enabled."), "disable": _("Key #%(position)d disabled.")}
            message = done.get(action, _("Key #%(position)d deleted."))
            messages.success(request, message % {"position": position})
        return HttpResponseRedirect(reverse("admin:channels_app_channel_change", args=[channel.pk]))

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

    @admin.display(description=_("tools"))
    def row_tools(self, channel: Channel) -> str:
        # Inside the changelist's own form (forms cannot nest): the button posts that form, with its CSRF
        # token, to the channel's test URL.
        return format_html(
            '<button type="submit" class="button channel-test" formmethod="post" formaction="{}">{}</button> '
            '<a class="button channel-fetch-models" href="{}">{}</a>',
            reverse("admin:channels_app_channel_test", args=[channel.pk]),
            _("Test"),
            reverse("admin:channels_app_channel_models", args=[channel.pk]),
            _("Fetch models"),
        )

    def get_urls(self) -> list[URLPattern]:
        tools = [
            path(
                "<int:channel_id>/test/", self.admin_site.admin_view(self.test_view), name="channels_app_channel_test"
            ),
            path(
                "<int:channel_id>/keys/<int:position>/<str:action>/",
                self.admin_site.admin_view(self.key_view),
                name="channels_app_channel_key",
            ),
            path(
                "<int:channel_id>/models/",
                self.admin_site.admin_view(self.models_view),
                name="channels_app_channel_models",
            ),
        ]
        return tools + super().get_urls()

    def changeable(self, request: HttpRequest, channel_id: int) -> Channel:
        channel = get_object_or_404(Channel, pk=channel_id)
        if not self.has_change_permission(request, channel):
            raise PermissionDenied
        return channel

    def test_view(self, request: HttpRequest, channel_id: int) -> HttpResponse:
        """The Test button: the test action on one channel, then back to the page the button was on."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self.test(request, Channel.objects.filter(pk=self.changeable(request, channel_id).pk))
        back = request.META.get("HTTP_REFERER", "")
        if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
            back = reverse("admin:channels_app_channel_changelist")
        return HttpResponseRedirect(back)

    def models_view(self, request: HttpRequest, channel_id: int) -> HttpResponse:
        """Fetch models: the upstream's model list, and a form that adds the chosen ones to the channel."""
        channel = self.changeable(request, channel_id)
        if request.method == "POST":
            self.add_chosen_models(request, channel)
            return HttpResponseRedirect(reverse("admin:channels_app_channel_change", args=[channel.pk]))
        try:
            found, problem = channel_models.fetch_models(channel), ""
        except channel_models.NoModelList as unavailable:
            found, problem = [], str(unavailable)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Models of %(channel)s") % {"channel": channel},
            "opts": self.opts,
            "channel": channel,
            "problem": problem,
            "models": [(name, name in channel.models) for name in found],
        }
        return TemplateResponse(request, "admin/channels_app/channel/fetch_models.html", context)

    def add_chosen_models(self, request: HttpRequest, channel: Channel) -> None:
        """Add the ticked models the channel does not list yet, audited as any change of the channel."""
        new = [name for name in dict.fromkeys(request.POST.getlist("model")) if name not in channel.models]
        try:
            if new:
                channels.update_channel(channel, {"models": channel.models + new}, actor=request.user)
        except ValidationError as refused:
            messages.error(request, "; ".join(refused.messages))
        else:
            added = _("%(count)d model(s) added to %(channel)s.") % {"count": len(new), "channel": channel}
            messages.success(request, added)

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
