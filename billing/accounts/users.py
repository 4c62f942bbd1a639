"""Creating, changing and deleting users, and the one way operators move a user's quota. Each change writes
its audit entry (billing.audit) with the actor the caller names."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from billing import audit, ledger
from billing.audit import Actor, System
from billing.models import AuditEntry, Log, User
from billing.quota import QuotaExceeded
from gateway_project.existing import delete_or_404, save_existing

EDITABLE = {"username", "password", "is_staff", "is_active", "group", "rpm_limit", "tpm_limit"}
NULLABLE = {"rpm_limit", "tpm_limit"}  # null = the group's limit
# What an audit entry records of a user: what the API and admin change, the password only as "changed".
AUDITED = audit.Subject(
    AuditEntry.Kind.USER,
    User,
    tuple(sorted(EDITABLE | {"email", "first_name", "last_name", "is_superuser", "quota"})),
    secret=frozenset({"password"}),
)


def create_user(
    username: str,
    password: str | None = None,
    *,
    is_staff: bool = False,
    is_active: bool = True,
    group: str = "default",
    quota: int = 0,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    actor: Actor = System.MANAGE_PY,
) -> User:
    """A new user; a starting quota goes through adjust_quota so the ledger shows where it came from."""
    check_username(username)
    check_group(group)
    with transaction.atomic():
        user = User(
            username=username,
            is_staff=is_staff,
            is_active=is_active,
            group=group,
            rpm_limit=rpm_limit,
            tpm_limit=tpm_limit,
        )
        _set_password(user, password)
        user.save()
        audit.created(actor, AUDITED, user)
        if quota:
            adjust_quota(user, quota, "starting quota", actor=actor)
    return user


def update_user(user: User, changes: dict, actor: Actor = System.MANAGE_PY) -> User:
    """Apply `changes` (fields of EDITABLE). Quota is not among them: it moves only through adjust_quota.
    User.DoesNotExist when another request deleted the user meanwhile."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValidationError({name: _("this field cannot be changed here") for name in sorted(unknown)})
    check_own_account(user, changes, actor)
    if "username" in changes and changes["username"] != user.username:
        check_username(changes["username"])
    if "group" in changes:
        check_group(changes["group"])
    nulls = [name for name, value in changes.items() if value is None and name not in NULLABLE]
    if nulls:
        raise ValidationError({name: _("must not be null") for name in nulls})
    if "password" in changes and not changes["password"]:
        raise ValidationError({"password": _("must not be empty")})
    if not changes:
        return user
    for name, value in changes.items():
        if name == "password":
            user.set_password(value)
        else:
            setattr(user, name, value)
    # Only the changed columns: a full save would write a stale quota over concurrent settlements.
    with audit.tracked(actor, AUDITED, user.pk):
        save_existing(user, update_fields=list(changes))
    return user


def delete_user(user_id: int, actor: Actor) -> None:
    """Delete the user with their keys and access tokens; Http404 when there is no such user."""
    with audit.tracked(actor, AUDITED, user_id, lock=False):
        delete_or_404(User.objects.all(), user_id)


def check_own_account(user: User, changes: dict, actor: Actor | None) -> None:
    """Staff cannot lock themselves out by deactivating their own account or dropping their own staff rights
    (PermissionDenied); another staff user can do either."""
    if isinstance(actor, User) and actor.pk == user.pk and False in (changes.get("is_active"), changes.get("is_staff")):
        raise PermissionDenied(
            _("you cannot deactivate your own account or take away your own staff rights; ask another staff user")
        )


def adjust_quota(user: User, delta: int, reason: str = "", actor: Actor = System.MANAGE_PY) -> int:
    """Add `delta` quota to `user` (negative removes it) and write a manage log and an audit entry; returns the
    new quota.

    Concurrency: one conditional UPDATE with F(), in the same transaction as the log row, so it composes
    with concurrent reservations and settlements (which also use F()) without losing any of them. A
    removal is refused (QuotaExceeded) when the user has less than that left, so it never drives the
    balance below zero on its own.
    """
    if delta == 0:
        raise ValidationError({"delta": _("must not be 0")})
    rows = User.objects.filter(pk=user.pk)
    if delta < 0:
        rows = rows.filter(quota__gte=-delta)
    with transaction.atomic():
        if not rows.update(quota=F("quota") + delta):
            left = User.objects.filter(pk=user.pk).values_list("quota", flat=True).first()
            raise QuotaExceeded(
                _("%(user)s has %(left)s quota left; cannot remove %(removed)d")
                % {"user": user.username, "left": left, "removed": -delta}
            )
        user.quota = audit.quota_moved(actor, user.pk, delta)
        by = audit.name_of(actor)
        ledger.write(
            Log(
                type=Log.Type.MANAGE,
                user_id=user.pk,
                quota=delta,
                content=f"{by} changed quota by {delta:+d} to {user.quota}" + (f": {reason}" if reason else ""),
            )
        )
    return user.quota


def check_username(username: str) -> None:
    field = User._meta.get_field("username")
    try:
        field.clean(username, None)
    except ValidationError as error:
        raise ValidationError({"username": error.messages}) from None
    if User.objects.filter(username=username).exists():
        raise ValidationError({"username": _("%(username)r is taken") % {"username": username}})


def check_group(group: str) -> None:
    limit = User._meta.get_field("group").max_length
    # PostgreSQL refuses a NUL character and an over-long value where SQLite stores them: check here.
    if not isinstance(group, str) or not group.strip() or len(group) > limit or "\x00" in group:
        raise ValidationError(
            {"group": _("must be a non-empty group name of at most %(limit)d characters") % {"limit": limit}}
        )


def _set_password(user: User, password: str | None) -> None:
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
