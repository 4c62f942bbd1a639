"""Login throttling for every sign-in step (the password, then a two-factor code): at most LOGIN_MAX_FAILURES
attempts per login name (username or email) and per IP are checked within LOGIN_LOCKOUT_SECONDS of the first;
later ones are refused (even with the right password or code) until the window passes. Counters live in the
shared cache, so the limit holds across instances with Redis. A two-factor code counts on the same counters as
the password step, under the username, so a stolen password does not buy a fresh round of guesses.

An attempt is counted before its password is checked, so attempts sent at once cannot all be checked before
any of them counts; a login that succeeds takes its own attempt back, so only failures (and attempts still
being checked) use up the limit. A refused attempt costs no password hash, and a process checks one password
at a time: PBKDF2 takes a core for a quarter of a second or more, and logins sent at once would otherwise
take every core from the relay's event loop.
"""

import contextlib
import threading

from allauth.account.auth_backends import AuthenticationBackend
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

HASHING = threading.Lock()  # one password check at a time in this process


THROTTLED = _("too many failed logins: try again later")


def attempt_keys(request: HttpRequest | None, username: str | None) -> list[str]:
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


def mark_throttled(request: HttpRequest | None) -> None:
    """Tell the sign-in form that its attempt was refused unchecked (Django's authenticate() turns the refusal
    into a plain failure), so it can say why."""
    if request is not None:
        request.login_throttled = True


def was_throttled(request: HttpRequest | None) -> bool:
    return bool(getattr(request, "login_throttled", False))


class ThrottledModelBackend(AuthenticationBackend):
    """allauth's backend (a username or an email with the password), counting each attempt before checking it
    (see the module)."""

    def authenticate(self, request: HttpRequest | None, **credentials) -> AbstractBaseUser | None:
        if not credentials.get("password"):
            return None
        keys = attempt_keys(request, credentials.get("username") or credentials.get("email"))
        if not count_attempt(keys):
            mark_throttled(request)
            raise PermissionDenied(THROTTLED)
        with HASHING:
            user = super().authenticate(request, **credentials)
        if user is not None:
            take_back(keys)
        return user
