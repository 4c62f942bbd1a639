"""Invite links and the one-time credits of a self-service sign-up.

A sign-up is recorded (SignUp) when the account is made, with the inviter whose link the visitor came through;
its credits are paid when the account is ready: at once, or when its email is verified if
EMAIL_VERIFICATION_REQUIRED (so unverified throw-away accounts earn their inviter nothing).
"""

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from billing.accounts.users import adjust_quota
from billing.audit import System
from billing.models import KEY_ALPHABET, SignUp, User

CODE_LENGTH = 8


def invite_code(user: User) -> str:
    """The user's invite code, made on first use (a conditional UPDATE: two tabs asking at once agree)."""
    while not user.invite_code:
        code = "".join(secrets.choice(KEY_ALPHABET) for _ in range(CODE_LENGTH))
        try:
            with transaction.atomic():
                User.objects.filter(pk=user.pk, invite_code__isnull=True).update(invite_code=code)
        except IntegrityError:  # another user's code: draw again
            continue
        user.invite_code = User.objects.filter(pk=user.pk).values_list("invite_code", flat=True).get()
    return user.invite_code


def invited_stats(user: User) -> dict:
    """How many accounts signed up through the user's link, and the quota those invitations paid the user."""
    return SignUp.objects.filter(inviter=user).aggregate(
        invitees=Count("pk"), earned=Sum("inviter_quota", filter=Q(credited_at__isnull=False), default=0)
    )


def record_sign_up(user: User, code: str | None) -> SignUp:
    """The new account's SignUp, with the inviter `code` names (an unknown code or the user's own: none)."""
    inviter = User.objects.filter(invite_code=code).exclude(pk=user.pk).first() if code else None
    return SignUp.objects.get_or_create(user=user, defaults={"inviter": inviter})[0]


def credit_sign_up(user_id: int) -> bool:
    """Pay a sign-up's credits, once; whether this call paid them. A user without a SignUp (made by an operator,
    imported) gets nothing.

    Concurrency: the claim is a conditional UPDATE of the SignUp row (`credited_at IS NULL`), so of any number
    of concurrent calls (a replayed verification link, two tabs) exactly one pays; the claim, the credits and
    their log rows share one transaction. Locks: the users first, in id order (the same order everywhere, so
    two sign-ups crediting each other's inviters cannot deadlock), then the SignUp row.
    """
    sign_up = SignUp.objects.filter(user_id=user_id, credited_at__isnull=True).select_related("inviter").first()
    if sign_up is None:
        return False
    inviter = sign_up.inviter
    invitee_quota = settings.QUOTA_FOR_INVITEE if inviter else 0
    inviter_quota = settings.QUOTA_FOR_INVITER if inviter else 0
    with transaction.atomic():
        list(User.objects.select_for_update().filter(pk__in=[user_id, sign_up.inviter_id]).order_by("pk").values("pk"))
        claimed = SignUp.objects.filter(user_id=user_id, credited_at__isnull=True).update(
            credited_at=timezone.now(),
            user_quota=settings.QUOTA_FOR_NEW_USER + invitee_quota,
            inviter_quota=inviter_quota,
        )
        if not claimed:
            return False
        user = User.objects.get(pk=user_id)
        if settings.QUOTA_FOR_NEW_USER:
            adjust_quota(user, settings.QUOTA_FOR_NEW_USER, "starting quota of a new account", actor=System.SIGN_UP)
        if inviter is not None and invitee_quota:
            adjust_quota(user, invitee_quota, f"invited by {inviter.username}", actor=System.SIGN_UP)
        if inviter is not None and inviter_quota:
            adjust_quota(inviter, inviter_quota, f"invited {user.username}", actor=System.SIGN_UP)
    return True
