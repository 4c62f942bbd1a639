"""Login throttling for admin and the console: at most LOGIN_MAX_FAILURES attempts per username and per IP
are checked within LOGIN_LOCKOUT_SECONDS of the first; later ones are refused (even with the right password)
until the window passes. Counters live in the shared cache, so the limit holds across instances with Redis.

An attempt is counted before its password is checked, so attempts sent at once cannot all be checked before
any of them counts; a login that succeeds takes its own attempt back, so only failures (and attempts still
being checked) use up the limit. A refused attempt costs no password hash, and a process checks one password
at a time: PBKDF2 takes a core for a quarter of a second or more, and logins sent at once would otherwise
take every core from the relay's event loop.
"""

import contextlib
import threading

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils.translation import gettext as _

HASHING = threading.Lock()  # one password check at a time in this process


def _keys(request: HttpRequest | None, username: str | None) -> list[str]:
    keys = [f"login-fail:user:{(username or '').lower()}"]
    if request is not None:
        keys.append(f"login-fail:ip:{request.META.get('REMOTE_ADDR', '')}")
    return keys


def count_attempt(keys: list[str]) -> bool:
    """Count one attempt on every key (atomically: cache.add, then cache.incr); whether each is within the limit.
    Without a reachable cache nothing is counted and the attempt is let through, as rate limits are."""
    within = True
    for key in keys:
        cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr: a new window
            cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)
            count = 1
        within = within and (count is None or count <= settings.LOGIN_MAX_FAILURES)
    return within


def take_back(keys: list[str]) -> None:
    for key in keys:
        with contextlib.suppress(ValueError):  # the window passed meanwhile
            cache.decr(key)


class ThrottledModelBackend(ModelBackend):
    """Django's username/password backend, counting each attempt before checking it (see the module)."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs
    ) -> AbstractBaseUser | None:
        keys = _keys(request, username or kwargs.get("username"))
        if not count_attempt(keys):
            raise PermissionDenied(_("too many failed logins: try again later"))
        with HASHING:
            user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            take_back(keys)
        return user
