"""Users, API keys, management access tokens, prices, reservations, consumption logs and the audit trail.

Quota is always an integer (500 000 quota = 1 USD by default). Every money movement goes through
billing.quota (or billing.payments, billing.accounts.users for credits), never through these models directly,
and every log row through billing.ledger.
"""

import hashlib
import secrets
import string

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from gateway_project.labels import labelled, name_model

KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 48


def hash_key(key_body: str) -> str:
    return hashlib.sha256(key_body.encode()).hexdigest()


def new_key_body() -> str:
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))


RPM_HELP = _("Requests per minute; empty = the group's limit (RATE_LIMITS), 0 = no limit")
TPM_HELP = _("Tokens per minute; empty = the group's limit (RATE_LIMITS), 0 = no limit")


class User(AbstractUser):
    group = models.CharField(max_length=64, default="default", db_index=True)
    quota = models.BigIntegerField(default=0, help_text=_("Remaining quota"))
    used_quota = models.BigIntegerField(default=0)
    request_count = models.BigIntegerField(default=0)
    # Over all the user's keys together (billing.accounts.ratelimit).
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text=RPM_HELP)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text=TPM_HELP)
    # The code of the user's invite link (billing.accounts.invitations), made when first shown.
    invite_code = models.CharField(max_length=16, unique=True, null=True, blank=True, editable=False)


class SignUp(models.Model):
    """A user who signed themselves up (billing.accounts.invitations): who invited them, and the one-time credits
    of a new account -- QUOTA_FOR_NEW_USER and QUOTA_FOR_INVITEE to them, QUOTA_FOR_INVITER to the inviter --
    paid when `credited_at` is set. One row per user (the primary key), so they are paid once."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True, related_name="sign_up")
    inviter = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="invitees")
    created_at = models.DateTimeField(default=timezone.now)
    credited_at = models.DateTimeField(null=True, blank=True)
    user_quota = models.BigIntegerField(default=0)
    inviter_quota = models.BigIntegerField(default=0)


class ApiKey(models.Model):
    """An app's API key (`sk-...`). Only the SHA-256 of the 48 characters after `sk-` is stored.

    Its table, the `token_id` columns that point at it and the management API (`/api/tokens`) keep one-api's
    word "token": that is what existing databases and new-api clients use."""

    class Status(models.TextChoices):
        ENABLED = labelled("enabled", _("Enabled"))
        DISABLED = labelled("disabled", _("Disabled"))

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=64, blank=True, default="")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_hint = models.CharField(max_length=20, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ENABLED)
    remain_quota = models.BigIntegerField(default=0)
    unlimited_quota = models.BooleanField(default=False)
    used_quota = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    model_limits = models.JSONField(
        null=True, blank=True, help_text=_("Allowed models (API field `models`); empty = all")
    )
    allow_ips = models.JSONField(null=True, blank=True, help_text=_("Allowed IPs or CIDRs; empty = any"))
    group = models.CharField(max_length=64, null=True, blank=True, help_text=_("Empty = the user's group"))
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text=RPM_HELP)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text=TPM_HELP)
    created_at = models.DateTimeField(default=timezone.now)
    accessed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "billing_token"
        verbose_name = _("API key")

    def __str__(self) -> str:
        return f"{self.name or 'key'} ({self.key_hint})"

    def set_key(self, key_body: str | None = None) -> str:
        """Give the key a new secret and return the full `sk-` key, which is never stored."""
        body = key_body or new_key_body()
        self.key_hash = hash_key(body)
        self.key_hint = f"sk-{body[:4]}...{body[-4:]}"
        return f"sk-{body}"


class AccessToken(models.Model):
    """Bearer credential for the management API (/api/). Not an ApiKey: it acts as its user on the management API
    and never reaches the relay, where only `sk-` API keys are accepted."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_tokens")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    name = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name or 'access token'} of {self.user}"

    def set_token(self) -> str:
        """Give the access token a new secret and return it; only its SHA-256 is stored."""
        plain = secrets.token_urlsafe(32)
        self.token_hash = hash_key(plain)
        return plain

    @classmethod
    def issue(cls, user: User, name: str = "") -> tuple["AccessToken", str]:
        token = cls(user=user, name=name)
        plain = token.set_token()
        token.save()
        return token, plain


def check_group_affinity(value: object) -> None:
    """Channel affinity per group: each group names where a conversation identity may come from (channels_app.
    affinity), or nothing to turn it off; a group left out uses AFFINITY_SOURCES."""
    names = settings.AFFINITY_SOURCE_NAMES
    if not isinstance(value, dict) or not all(
        isinstance(sources, list) and all(source in names for source in sources) for sources in value.values()
    ):
        message = _("Map each group to a list of some of: %(names)s (an empty list turns affinity off).")
        raise ValidationError(message, params={"names": ", ".join(names)})


class PriceTable(models.Model):
    """The single row of prices. Missing maps fall back to billing.pricing.DEFAULTS."""

    quota_per_unit = models.BigIntegerField(default=500_000)
    model_ratio = models.JSONField(default=dict, blank=True)
    completion_ratio = models.JSONField(default=dict, blank=True)
    model_price = models.JSONField(default=dict, blank=True)
    group_ratio = models.JSONField(default=dict, blank=True)
    cache_ratio = models.JSONField(default=dict, blank=True, help_text=_("Cache read / input price, per model"))
    create_cache_ratio = models.JSONField(
        default=dict, blank=True, help_text=_("5-minute cache write / input price, per model")
    )
    create_cache_ratio_1h = models.JSONField(
        default=dict, blank=True, help_text=_("1-hour cache write / input price, per model")
    )
    group_affinity = models.JSONField(
        default=dict,
        blank=True,
        validators=[check_group_affinity],
        help_text=_("Per group: where a conversation identity may come from, for sticky sessions ([] = off)"),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("price table")

    def __str__(self) -> str:
        return "Prices"


class Reservation(models.Model):
    """Quota held for one in-flight request, keyed by its request id (idempotency)."""

    class State(models.TextChoices):
        HELD = labelled("held", _("Held"))
        SETTLED = labelled("settled", _("Settled"))
        RELEASED = labelled("released", _("Released"))

    request_id = models.CharField(max_length=64, unique=True)
    token_id = models.BigIntegerField(null=True)
    user_id = models.BigIntegerField()
    amount = models.BigIntegerField()
    unlimited = models.BooleanField(default=False, help_text=_("The key was unlimited: only the user was held"))
    state = models.CharField(max_length=16, choices=State.choices, default=State.HELD)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["state", "created_at"])]


# A consume log's tokens: all the input, its cache lanes, all the output, its reasoning part.
LOG_TOKEN_FIELDS = (
    "prompt_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "completion_tokens",
    "reasoning_tokens",
)


class Log(models.Model):
    """One row of the ledger, written only by billing.ledger (which also moves DailyUsage with it)."""

    class Type(models.TextChoices):
        CONSUME = labelled("consume", _("Consume"))
        TOPUP = labelled("topup", _("Topup"))
        REFUND = labelled("refund", _("Refund"))
        MANAGE = labelled("manage", _("Manage"))
        ERROR = labelled("error", _("Error"))

    created_at = models.DateTimeField(default=timezone.now)
    type = models.CharField(max_length=16, choices=Type.choices)
    user_id = models.BigIntegerField(null=True)
    token_id = models.BigIntegerField(null=True)
    token_name = models.CharField(max_length=64, blank=True, default="")
    channel_id = models.BigIntegerField(null=True)
    model = models.CharField(max_length=128, blank=True, default="")
    prompt_tokens = models.IntegerField(default=0, help_text=_("All the input, the cache lanes included"))
    completion_tokens = models.IntegerField(default=0, help_text=_("All the output, reasoning included"))
    cache_read_tokens = models.IntegerField(default=0)
    cache_write_5m_tokens = models.IntegerField(default=0)
    cache_write_1h_tokens = models.IntegerField(default=0)
    reasoning_tokens = models.IntegerField(default=0)
    quota = models.BigIntegerField(default=0)
    use_time_ms = models.IntegerField(default=0)
    is_stream = models.BooleanField(default=False)
    request_id = models.CharField(max_length=64, blank=True, default="")
    content = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["user_id", "created_at"]),
            models.Index(fields=["token_id", "created_at"]),
            models.Index(fields=["channel_id", "created_at"]),
            models.Index(fields=["model", "created_at"]),
            models.Index(fields=["type", "created_at"]),
            models.Index(fields=["request_id"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["request_id"], condition=models.Q(type="consume"), name="one_consume_log_per_request"
            )
        ]


class DailyUsage(models.Model):
    """Consumption per day (in TIME_ZONE), user, key, channel and model, net of refunds: what stats and the
    console read instead of the logs, and what remains after old logs are deleted. 0 = no key/channel."""

    day = models.DateField()
    user_id = models.BigIntegerField()
    token_id = models.BigIntegerField(default=0)
    channel_id = models.BigIntegerField(default=0)
    model = models.CharField(max_length=128, blank=True, default="")
    requests = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_5m_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    quota = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = _("daily usage")
        constraints = [
            models.UniqueConstraint(fields=["user_id", "day", "token_id", "channel_id", "model"], name="one_usage_row")
        ]
        # Every filter of /api/logs/stats with a day range; the unique key serves user_id.
        indexes = [
            models.Index(fields=["day"]),
            models.Index(fields=["token_id", "day"]),
            models.Index(fields=["channel_id", "day"]),
            models.Index(fields=["model", "day"]),
        ]


class AuditEntry(models.Model):
    """The operators' record of one state change, written by billing.audit in the change's transaction."""

    class Kind(models.TextChoices):
        CHANNEL = labelled("channel", _("Channel"))
        KEY = labelled("key", _("Key"))
        USER = labelled("user", _("User"))
        PRICES = labelled("prices", _("Prices"))

    class Action(models.TextChoices):
        CREATE = labelled("create", _("Create"))
        UPDATE = labelled("update", _("Update"))
        DELETE = labelled("delete", _("Delete"))
        QUOTA = labelled("quota", _("Quota"))

    created_at = models.DateTimeField(default=timezone.now)
    # Not a foreign key: an entry outlives the user who made it, as the ledger does.
    actor_id = models.BigIntegerField(null=True, blank=True, help_text=_("The user; empty for a system actor"))
    actor_name = models.CharField(max_length=150, help_text=_('The username, or a system actor such as "manage.py"'))
    object_type = models.CharField(max_length=16, choices=Kind.choices)
    object_id = models.BigIntegerField()
    action = models.CharField(max_length=16, choices=Action.choices)
    changes = models.JSONField(
        default=dict, encoder=DjangoJSONEncoder, help_text=_('{field: [old, new]}; a secret only as "changed"')
    )

    class Meta:
        verbose_name_plural = _("audit entries")
        indexes = [
            models.Index(fields=["object_type", "object_id", "created_at"]),
            models.Index(fields=["actor_name", "created_at"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.actor_name}: {self.action} {self.object_type} {self.object_id}"


class Redemption(models.Model):
    """A redemption code worth `quota`. Only its SHA-256 is stored: the plain code is shown once, at creation."""

    class Status(models.TextChoices):
        UNUSED = labelled("unused", _("Unused"))
        USED = labelled("used", _("Used"))

    name = models.CharField(max_length=64, help_text=_("Batch label"))
    code_hash = models.CharField(max_length=64, unique=True, editable=False)
    code_hint = models.CharField(max_length=20, editable=False)
    quota = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNUSED)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    used_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.code_hint})"


class TopUpOrder(models.Model):
    """A WeChat Pay Native order. Moves pending -> paid (crediting `quota` once) or pending -> closed."""

    class Status(models.TextChoices):
        PENDING = labelled("pending", _("Pending"))
        PAID = labelled("paid", _("Paid"))
        CLOSED = labelled("closed", _("Closed"))

    out_trade_no = models.CharField(max_length=32, unique=True)
    # SET_NULL: a payment record outlives its user, as the ledger (Log.user_id) does.
    user = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="topup_orders")
    amount_fen = models.BigIntegerField(help_text=_("What the payer pays, in fen (1 CNY = 100 fen)"))
    quota = models.BigIntegerField(help_text=_("Quota credited when the order is paid"))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    code_url = models.CharField(max_length=256, blank=True, default="")
    transaction_id = models.CharField(max_length=64, blank=True, default="", help_text=_("WeChat Pay's id"))
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"]), models.Index(fields=["user", "created_at"])]

    def __str__(self) -> str:
        return self.out_trade_no

    @property
    def amount_yuan(self) -> str:
        return f"{self.amount_fen // 100}.{self.amount_fen % 100:02d}"


name_model(
    User,
    group=_("group"),
    quota=_("quota"),
    used_quota=_("used quota"),
    request_count=_("request count"),
    rpm_limit=_("rpm limit"),
    invite_code=_("invite code"),
    tpm_limit=_("tpm limit"),
)
name_model(
    SignUp,
    _("sign-up"),
    _("sign-ups"),
    user=_("user"),
    inviter=_("inviter"),
    created_at=_("created at"),
    credited_at=_("credited at"),
    user_quota=_("user quota"),
    inviter_quota=_("inviter quota"),
)
name_model(
    ApiKey,
    _("API key"),
    _("API keys"),
    user=_("user"),
    name=_("name"),
    key_hint=_("key hint"),
    status=_("status"),
    remain_quota=_("remain quota"),
    unlimited_quota=_("unlimited quota"),
    used_quota=_("used quota"),
    expires_at=_("expires at"),
    model_limits=_("model limits"),
    allow_ips=_("allow ips"),
    group=_("group"),
    rpm_limit=_("rpm limit"),
    tpm_limit=_("tpm limit"),
    created_at=_("created at"),
    accessed_at=_("accessed at"),
)
name_model(
    AccessToken, _("access token"), _("access tokens"), user=_("user"), name=_("name"), created_at=_("created at")
)
name_model(
    PriceTable,
    _("price table"),
    _("price tables"),
    quota_per_unit=_("quota per unit"),
    model_ratio=_("model ratio"),
    completion_ratio=_("completion ratio"),
    model_price=_("model price"),
    group_ratio=_("group ratio"),
    cache_ratio=_("cache ratio"),
    create_cache_ratio=_("create cache ratio"),
    create_cache_ratio_1h=_("create cache ratio 1h"),
    group_affinity=_("group affinity"),
    updated_at=_("updated at"),
)
name_model(
    Reservation,
    _("reservation"),
    _("reservations"),
    request_id=_("request id"),
    token_id=_("token id"),
    user_id=_("user id"),
    amount=_("amount"),
    unlimited=_("unlimited"),
    state=_("state"),
    created_at=_("created at"),
)
name_model(
    Log,
    _("log"),
    _("logs"),
    created_at=_("created at"),
    type=_("type"),
    user_id=_("user id"),
    token_id=_("token id"),
    token_name=_("token name"),
    channel_id=_("channel id"),
    model=_("model"),
    prompt_tokens=_("prompt tokens"),
    completion_tokens=_("completion tokens"),
    cache_read_tokens=_("cache read tokens"),
    cache_write_5m_tokens=_("cache write 5m tokens"),
    cache_write_1h_tokens=_("cache write 1h tokens"),
    reasoning_tokens=_("reasoning tokens"),
    quota=_("quota"),
    use_time_ms=_("use time ms"),
    is_stream=_("is stream"),
    request_id=_("request id"),
    content=_("content"),
)
name_model(
    AuditEntry,
    _("audit entry"),
    _("audit entries"),
    created_at=_("created at"),
    actor_id=_("actor id"),
    actor_name=_("actor name"),
    object_type=_("object type"),
    object_id=_("object id"),
    action=_("action"),
    changes=_("changes"),
)
name_model(
    Redemption,
    _("redemption"),
    _("redemptions"),
    name=_("name"),
    code_hint=_("code hint"),
    quota=_("quota"),
    status=_("status"),
    created_by=_("created by"),
    created_at=_("created at"),
    used_by=_("used by"),
    used_at=_("used at"),
)
name_model(
    TopUpOrder,
    _("top up order"),
    _("top up orders"),
    out_trade_no=_("out trade no"),
    user=_("user"),
    amount_fen=_("amount fen"),
    quota=_("quota"),
    status=_("status"),
    code_url=_("code url"),
    transaction_id=_("transaction id"),
    created_at=_("created at"),
    expires_at=_("expires at"),
    paid_at=_("paid at"),
    closed_at=_("closed at"),
)
