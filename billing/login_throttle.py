"""Login throttling for admin and the console: after LOGIN_MAX_FAILURES failed logins for one username or
from one IP within LOGIN_LOCKOUT_SECONDS, further attempts are refused (even with the right password)
until the window passes. Counters live in the shared cache, so the limit holds across instances with Redis.
"""

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest


def _keys(request: HttpRequest | None, username: str | None) -> list[str]:
    keys = [f"login-fail:user:{(username or '').lower()}"]
    if request is not None:
        keys.append(f"login-fail:ip:{request.META.get('REMOTE_ADDR', '')}")
    return keys


def locked_out(request: HttpRequest | None, username: str | None) -> bool:
    return any((cache.get(key) or 0) >= settings.LOGIN_MAX_FAILURES for key in _keys(request, username))


class ThrottledModelBackend(ModelBackend):
    """Django's username/password backend, refusing locked-out usernames and IPs before checking."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs
    ):
        if locked_out(request, username or kwargs.get("username")):
            raise PermissionDenied("too many failed logins: try again later")
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed)
def count_failure(credentials: dict, request: HttpRequest | None = None, **_kwargs) -> None:
    for key in _keys(request, credentials.get("username")):
        cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)
