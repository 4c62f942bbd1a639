"""Management API authentication: `Authorization: Bearer <access token>` (billing.models.AccessToken)."""

from django.http import HttpRequest
from ninja.security import HttpBearer

from billing.accounts.access import require_staff, user_for_access_token
from billing.models import User


class AccessTokenAuth(HttpBearer):
    """The request's `auth` is the token's (active) user; no or an unknown token is 401."""

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        return user_for_access_token(token)


class StaffAuth(AccessTokenAuth):
    """As AccessTokenAuth, and 403 for a user who is not staff -- before the body is read, so a non-staff
    caller learns nothing from validation errors."""

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        user = super().authenticate(request, token)
        if user is not None:
            require_staff(user)
        return user


signed_in = AccessTokenAuth()
staff_only = StaffAuth()
