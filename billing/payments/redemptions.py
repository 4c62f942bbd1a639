"""Redemption codes: staff create batches; a user redeems a code exactly once for its quota.

Codes are stored as their SHA-256 (like API keys): the plain codes exist only in the answer that
creates them.
"""

import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import audit, ledger
from billing.models import KEY_ALPHABET, Log, Redemption, User, hash_key

CODE_LENGTH = 32
MAX_BATCH = 1000


class AlreadyRedeemed(Exception):
    """The code exists but was used before (by anyone); the API answers 409."""


def new_code() -> str:
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(CODE_LENGTH))


def create_batch(name: str, quota: int, count: int, actor: User | None = None) -> list[str]:
    """`count` new unused codes worth `quota` each; returns the plain codes, which are not stored."""
    if not name.strip() or len(name) > Redemption._meta.get_field("name").max_length:
        raise ValidationError({"name": _("must be 1 to 64 characters")})
    if quota <= 0:
        raise ValidationError({"quota": _("must be > 0")})
    if not 1 <= count <= MAX_BATCH:
        raise ValidationError({"count": _("must be between 1 and %(max)d") % {"max": MAX_BATCH}})
    codes = [new_code() for _ in range(count)]
    Redemption.objects.bulk_create(
        Redemption(name=name, code_hash=hash_key(code), code_hint=hint(code), quota=quota, created_by=actor)
        for code in codes
    )
    return codes


def hint(code: str) -> str:
    return f"{code[:4]}...{code[-4:]}"


def redeem(user: User, code: str) -> int:
    """Credit `user` with the code's quota and write a top-up log and an audit entry (the user is its actor);
    returns the quota credited.

    Redemption.DoesNotExist for an unknown code, AlreadyRedeemed for a used one.

    Concurrency: the claim is one conditional `UPDATE ... SET status='used' WHERE status='unused'`. The
    database serialises writers of that row (PostgreSQL and MySQL re-check the WHERE after the first
    transaction commits; SQLite takes the write lock when the transaction starts), so of any number of
    concurrent redeemers exactly one updates a row. The claim, the credit, the log and the audit entry share one
    transaction: a failure after the claim rolls the claim back too.

    Locks: user -> redemption. The claim writes `used_by`, and InnoDB checks that foreign key with a shared
    lock on the user's row; two redemptions of one user that both held it and then wanted the row for the
    credit deadlocked (MariaDB answered most of 200 concurrent redemptions with error 1213). Locking the
    user first makes them queue instead.
    """
    code_hash = hash_key(code.strip())
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk").first()
        found = Redemption.objects.filter(code_hash=code_hash).values("pk", "name", "code_hint", "quota").get()
        claimed = Redemption.objects.filter(pk=found["pk"], status=Redemption.Status.UNUSED).update(
            status=Redemption.Status.USED, used_by=user, used_at=timezone.now()
        )
        if not claimed:
            raise AlreadyRedeemed(_("this redemption code has already been used"))
        User.objects.filter(pk=user.pk).update(quota=F("quota") + found["quota"])
        audit.quota_moved(user, user.pk, found["quota"])
        ledger.write(
            Log(
                type=Log.Type.TOPUP,
                user_id=user.pk,
                quota=found["quota"],
                content=f"redeemed code {found['code_hint']} of batch {found['name']!r}",
            )
        )
    return found["quota"]
