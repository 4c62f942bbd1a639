"""Cloudflare Turnstile, the CAPTCHA of the sign-in and sign-up forms when TURNSTILE_SECRET_KEY is set: the
widget's token is checked with Cloudflare's siteverify (TURNSTILE_VERIFY_URL) before anything else the form
does. It fails closed: no token, a refusal, an unreachable or garbled verifier all mean "not solved"."""

import logging

import httpx
from django.conf import settings
from django.http import HttpRequest

log = logging.getLogger(__name__)
TOKEN_FIELD = "cf-turnstile-response"  # the name Turnstile's widget gives its hidden input
TIMEOUT = 10


def enabled() -> bool:
    return bool(settings.TURNSTILE_SECRET_KEY)


def solved(request: HttpRequest) -> bool:
    """Whether the request carries a token Cloudflare accepts."""
    token = request.POST.get(TOKEN_FIELD, "")
    if not token:
        return False
    form = {"secret": settings.TURNSTILE_SECRET_KEY, "response": token, "remoteip": request.META.get("REMOTE_ADDR")}
    try:
        answer = httpx.post(settings.TURNSTILE_VERIFY_URL, data=form, timeout=TIMEOUT)
        return answer.status_code == 200 and answer.json().get("success") is True
    except (httpx.HTTPError, ValueError, AttributeError) as failure:
        log.warning("Turnstile verification failed: %s", type(failure).__name__)
        return False
