"""Who is calling the management API, and what they may touch.

Access tokens are looked up by their SHA-256 on every request (no cache): the management API is low
traffic, and a deleted token or deactivated user must lose access at once.
"""

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

from billing.models import AccessToken, User, hash_key


def user_for_access_token(plain: str) -> User | None:
    """The active user an access token belongs to, or None for an unknown token or inactive user."""
    plain = plain.strip()
    if not plain:
        return None
    token = AccessToken.objects.select_related("user").filter(token_hash=hash_key(plain)).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


def require_staff(user: User) -> None:
    if not user.is_staff:
        raise PermissionDenied(_("this needs a staff account"))


def find_user(username: str) -> User:
    """The user named `username`; User.DoesNotExist with a message that names it."""
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise User.DoesNotExist(_("no user named %(username)r") % {"username": username}) from None
