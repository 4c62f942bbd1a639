"""API keys (`sk-...`): who may see them, creating one (the plain key exists only in that answer), changing and
deleting them, each with its audit entry (billing.audit).

The API calls the allowed-models list `models`; the model stores it in `ApiKey.model_limits`.
A key's `rpm_limit`/`tpm_limit` override its group's key limits (billing.accounts.ratelimit; null = the group's,
0 = none). Staff may set any value; a user may only tighten their own key below what the group allows.
"""

import ipaddress
from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from billing import audit
from billing.accounts import ratelimit
from billing.accounts.access import require_staff
from billing.accounts.key_auth import key_group_allowed
from billing.audit import Actor, System
from billing.models import ApiKey, AuditEntry, User
from gateway_project.existing import delete_or_404, save_existing

# The key's rate-limit fields and the group limit each one overrides.
RATE_LIMIT_FIELDS = {"rpm_limit": "key_rpm", "tpm_limit": "key_tpm"}
MAX_RATE_LIMIT = 2_147_483_647  # the column is a positive 32-bit integer
NULLABLE = {"expires_at", "models", "allow_ips", "group", *RATE_LIMIT_FIELDS}
EDITABLE = NULLABLE | {"name", "status", "remain_quota", "unlimited_quota"}
# What an audit entry records of a key: its owner and hint (never the key) and every setting.
AUDITED = audit.Subject(
    AuditEntry.Kind.KEY, ApiKey, ("user_id", "key_hint", *sorted(EDITABLE - {"models"} | {"model_limits"}))
)


def visible_keys(viewer: User) -> QuerySet[ApiKey]:
    """Staff see every key; everyone else only their own."""
    keys = ApiKey.objects.order_by("-id")
    return keys if viewer.is_staff else keys.filter(user=viewer)


def owner_for(actor: User, user_id: int | None) -> User:
    """Whose key `actor` is creating: their own, or (staff only) user `user_id`'s."""
    if user_id is None or user_id == actor.pk:
        return actor
    require_staff(actor)
    return User.objects.get(pk=user_id)


def create_key(
    owner: User,
    *,
    actor: Actor = System.MANAGE_PY,
    name: str = "",
    status: str = ApiKey.Status.ENABLED,
    remain_quota: int = 0,
    unlimited_quota: bool = False,
    expires_at: datetime | None = None,
    models: list[str] | None = None,
    allow_ips: list[str] | None = None,
    group: str | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key for `owner`; returns it with the full `sk-` key, which is not stored anywhere. A System actor
    (a command) gets what the owner may have."""
    fields = {
        "name": name,
        "status": status,
        "remain_quota": remain_quota,
        "unlimited_quota": unlimited_quota,
        "expires_at": expires_at,
        "models": models,
        "allow_ips": allow_ips,
        "group": group,
        "rpm_limit": rpm_limit,
        "tpm_limit": tpm_limit,
    }
    check_fields(fields, owner, actor if isinstance(actor, User) else owner)
    key = ApiKey(user=owner)
    _apply(key, fields)
    plain = key.set_key()
    with transaction.atomic():
        key.save()
        audit.created(actor, AUDITED, key)
    return key, plain


def update_key(key: ApiKey, changes: dict, actor: User) -> ApiKey:
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValidationError({name: _("this field cannot be changed here") for name in sorted(unknown)})
    check_fields(changes, key.user, actor, stored_group=key.group)
    if not changes:
        return key
    _apply(key, changes)
    # Only the changed columns: settlements move used_quota/remain_quota concurrently with F().
    with audit.tracked(actor, AUDITED, key.pk):
        save_existing(key, update_fields=[_column(name) for name in changes])
    return key


def delete_key(deletable: QuerySet[ApiKey], key_id: int, actor: Actor) -> None:
    """Delete the key `key_id` if it is among `deletable` (what the actor may delete); Http404 otherwise."""
    with audit.tracked(actor, AUDITED, key_id, lock=False):
        delete_or_404(deletable, key_id)


def check_fields(fields: dict, owner: User, actor: User, stored_group: str | None = None) -> None:
    for name, value in fields.items():
        if value is None and name not in NULLABLE:
            raise ValidationError({name: _("must not be null")})
    for name in ("name", "group"):
        limit = ApiKey._meta.get_field(name).max_length
        value = fields.get(name)
        # PostgreSQL refuses a NUL character where SQLite stores it.
        if isinstance(value, str) and (len(value) > limit or "\x00" in value):
            raise ValidationError(
                {name: _("must be at most %(limit)d characters, none of them NUL") % {"limit": limit}}
            )
    if fields.get("status") not in (None, *ApiKey.Status.values):
        raise ValidationError({"status": _("must be one of %(values)s") % {"values": ", ".join(ApiKey.Status.values)}})
    if fields.get("remain_quota") is not None and fields["remain_quota"] < 0:
        raise ValidationError({"remain_quota": _("must be >= 0")})
    if fields.get("models") is not None and not all(isinstance(m, str) and m.strip() for m in fields["models"]):
        raise ValidationError({"models": _("must be a list of model names")})
    for entry in fields.get("allow_ips") or ():
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problem = _("%(entry)r is not an IP address or CIDR range") % {"entry": entry}
            raise ValidationError({"allow_ips": problem}) from None
    group = fields.get("group")
    # The group sets prices and reachable channels, so users may only pick their own.
    if group is not None and group != owner.group and not actor.is_staff:
        raise PermissionDenied(_("group: you may only use your own group (%(group)s) or null") % {"group": owner.group})
    check_key_group(group, owner)
    key_group = (group if "group" in fields else stored_group) or owner.group
    check_rate_limits(fields, key_group, actor)


def check_key_group(group: str | None, owner: User) -> None:
    """Staff too may pin a key only to its owner's group (unless the owner is staff): authentication would
    refuse any other (billing.accounts.key_auth.key_group_allowed)."""
    if not key_group_allowed(group, owner):
        message = _("%(user)s is in group %(group)s, not %(asked)s: move the user first, or leave it empty") % {
            "user": owner.username,
            "group": owner.group,
            "asked": group,
        }
        raise ValidationError({"group": message})


def check_rate_limits(fields: dict, key_group: str, actor: User) -> None:
    """Rate limits are the operator's control: a user may lower their key's limit, not lift or remove it."""
    group_limits = ratelimit.limits_for(key_group)
    for name, group_field in RATE_LIMIT_FIELDS.items():
        value = fields.get(name)
        if value is None:
            continue
        if not 0 <= value <= MAX_RATE_LIMIT:
            raise ValidationError(
                {name: _("must be between 0 (no limit) and %(max)d, or null") % {"max": MAX_RATE_LIMIT}}
            )
        ceiling = getattr(group_limits, group_field)
        if ceiling and not 0 < value <= ceiling and not actor.is_staff:
            limit = {"name": name, "group": key_group, "ceiling": ceiling}
            raise PermissionDenied(
                _("%(name)s: you may only lower your key's limit (group %(group)s: %(ceiling)s)") % limit
            )


def _apply(key: ApiKey, fields: dict) -> None:
    for name, value in fields.items():
        setattr(key, _column(name), value)


def _column(name: str) -> str:
    """The API calls the allowed-models list `models`; the model stores it in `model_limits`."""
    return "model_limits" if name == "models" else name
