"""An upstream account ("channel"): provider type, base URL, encrypted key and the models it serves."""

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from channels_app import channel_types, crypto, overrides
from gateway_project.labels import labelled, name_model
from gateway_project.safe_text import MODEL_NAME_RULE, is_header_safe, is_model_name


def validate_status_code_mapping(value: object) -> None:
    if not isinstance(value, dict):
        raise ValidationError(_('status_code_mapping must be an object such as {"400": "500"}'))
    for source, target in value.items():
        if not (str(source).isdigit() and str(target).isdigit() and 100 <= int(target) <= 599):
            raise ValidationError(
                _("status_code_mapping entry %(source)r: %(target)r must map a status to a status"),
                params={"source": source, "target": target},
            )


def validate_string_map(value: object) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValidationError(_("model_mapping must be an object of model name to model name"))
    # The upstream name goes into URLs (Azure deployments, Gemini paths, custom `{model}` templates).
    for source, target in value.items():
        if not is_model_name(target):
            raise ValidationError(
                _("model_mapping %(source)r: the upstream model name %(rule)s"),
                params={"source": source, "rule": MODEL_NAME_RULE},
            )


def validate_string_list(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ValidationError(_("must be a list of non-empty strings"))


class KeyMode(models.TextChoices):
    """How a channel of several keys picks one per request: at random, or in turn (across instances)."""

    RANDOM = labelled("random", _("Random"))
    POLLING = labelled("polling", _("Polling (round robin)"))


class Channel(models.Model):
    class Status(models.TextChoices):
        ENABLED = labelled("enabled", _("Enabled"))
        DISABLED = labelled("disabled", _("Disabled"))
        AUTO_DISABLED = labelled("auto_disabled", _("Auto Disabled"))

    name = models.CharField(max_length=128, db_index=True)
    # One of channels_app.channel_types (checked by channels_app.channels and the admin form, not by choices:
    # a new type needs no migration).
    type = models.CharField(max_length=32, default="openai")
    # The channel's first key; a channel of several keys holds them all as ChannelKey rows.
    key_encrypted = models.TextField(editable=False)
    base_url = models.CharField(max_length=512, blank=True, default="")
    model_mapping = models.JSONField(default=dict, blank=True, validators=[validate_string_map])
    status_code_mapping = models.JSONField(default=dict, blank=True, validators=[validate_status_code_mapping])
    groups = models.JSONField(default=list, validators=[validate_string_list])
    priority = models.IntegerField(default=0)
    weight = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ENABLED, db_index=True)
    status_reason = models.CharField(max_length=512, blank=True, default="")
    auto_ban = models.BooleanField(default=True)
    test_model = models.CharField(max_length=128, blank=True, default="")
    config = models.JSONField(default=dict, blank=True)
    used_quota = models.BigIntegerField(default=0)
    response_time_ms = models.IntegerField(default=0)
    balance = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    key_mode = models.CharField(max_length=16, choices=KeyMode.choices, default=KeyMode.RANDOM)
    # Last field on purpose: from here on the class body's `models` names this field, not django.db.models.
    models = models.JSONField(default=list, validators=[validate_string_list], help_text=_("`*` suffix = prefix"))

    def __str__(self) -> str:
        return f"#{self.pk} {self.name} ({self.type})"

    @property
    def key(self) -> str:
        return crypto.decrypt(self.key_encrypted) if self.key_encrypted else ""

    @key.setter
    def key(self, plain: str) -> None:
        self.key_encrypted = crypto.encrypt(plain)

    @property
    def key_hint(self) -> str:
        return crypto.hint(self.key_encrypted)

    def clean(self) -> None:
        problems = {}
        if self.test_model and not is_model_name(self.test_model):
            problems["test_model"] = _("the model name %(rule)s") % {"rule": MODEL_NAME_RULE}
        key_problem = self.key_problem(self.readable_key())
        if key_problem:
            problems["key"] = key_problem
        if config_problems := overrides.problems(self.config):
            problems["config"] = config_problems
        if problems:
            raise ValidationError(problems)

    @property
    def key_in_headers(self) -> bool:
        """Whether the key travels in a header (or, for Gemini, the query string), as every type's but one does:
        Vertex's key is a service account's JSON, from which the gateway signs its own token."""
        kind = channel_types.find(self.type)
        return kind is None or kind.key_in_headers

    def key_problem(self, key: str) -> str | None:
        """Why `key` cannot be one of this channel's keys, if it cannot."""
        if self.key_in_headers and not is_header_safe(key):
            return _(
                "must be printable ASCII: an HTTP header cannot carry a line break, another control character "
                "or a non-ASCII letter (several keys: one per line, or a JSON list)"
            )
        return None

    def key_list(self) -> list["ChannelKey"]:
        """Every key with its status: the ChannelKey rows of a channel of several keys, else its one key (unsaved,
        with the channel's own status)."""
        stored = list(self.keys.all())
        if stored:
            return stored
        if self.status == self.Status.AUTO_DISABLED:  # its one key died
            status, reason = self.status, self.status_reason
        else:
            status, reason = self.Status.ENABLED, ""
        return [
            ChannelKey(channel=self, position=0, key_encrypted=self.key_encrypted, status=status, status_reason=reason)
        ]

    def readable_key(self) -> str:
        """The key, or "" when it cannot be decrypted (SESSION_SECRET changed): there is nothing to check then."""
        try:
            return self.key
        except ValueError:
            return ""

    def save(self, *args, **kwargs) -> None:
        if not self.groups:
            self.groups = ["default"]
        super().save(*args, **kwargs)


name_model(
    Channel,
    _("channel"),
    _("channels"),
    name=_("name"),
    type=_("type"),
    key_hint=pgettext_lazy("upstream", "key hint"),
    base_url=_("base url"),
    model_mapping=_("model mapping"),
    status_code_mapping=_("status code mapping"),
    groups=_("groups"),
    priority=_("priority"),
    weight=_("weight"),
    status=_("status"),
    status_reason=_("status reason"),
    auto_ban=_("auto ban"),
    test_model=_("test model"),
    config=_("config"),
    used_quota=_("used quota"),
    response_time_ms=_("response time ms"),
    balance=_("balance"),
    created_at=_("created at"),
    key_mode=_("key mode"),
    models=_("models"),
)


class ChannelKey(models.Model):
    """One key of a channel of several keys, with its own status: a dead credential disables the key, and the
    channel only when none is left."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="keys")
    # Stable while the key exists (deleting a key leaves a gap): requests and the log name a key by it.
    position = models.PositiveIntegerField()
    key_encrypted = models.TextField()
    status = models.CharField(max_length=16, choices=Channel.Status.choices, default=Channel.Status.ENABLED)
    status_reason = models.CharField(max_length=512, blank=True, default="")
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("channel", "position")
        constraints = [models.UniqueConstraint(fields=("channel", "position"), name="channel_key_position")]

    def __str__(self) -> str:
        return f"{self.channel_id}#{self.position} {self.key_hint}"

    @property
    def key(self) -> str:
        return crypto.decrypt(self.key_encrypted)

    @property
    def key_hint(self) -> str:
        return crypto.hint(self.key_encrypted)


name_model(
    ChannelKey,
    pgettext_lazy("upstream", "channel key"),
    pgettext_lazy("upstream", "channel keys"),
    channel=_("channel"),
    position=_("position"),
    key_encrypted=pgettext_lazy("upstream", "key"),
    key_hint=pgettext_lazy("upstream", "key hint"),
    status=_("status"),
    status_reason=_("status reason"),
    changed_at=_("changed at"),
)
