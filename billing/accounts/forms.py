"""allauth's sign-in, sign-up and two-factor forms with the gateway's checks: Turnstile before anything else
(billing.accounts.turnstile) and the login throttle on the two-factor code (billing.accounts.login_throttle; the
password step is throttled by the authentication backend)."""

from allauth.account import forms as account_forms
from allauth.core import context
from allauth.mfa.base import forms as mfa_forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from billing.accounts import turnstile
from billing.accounts.login_throttle import THROTTLED, attempt_keys, count_attempt, take_back, was_throttled

NOT_SOLVED = _("Please complete the CAPTCHA and try again.")


class Captcha:
    """A form mixin: its template shows the Turnstile widget when `captcha_site_key` is set (the `fields`
    element), and check_captcha refuses a request without a solved one."""

    @property
    def captcha_site_key(self) -> str:
        return settings.TURNSTILE_SITE_KEY if turnstile.enabled() else ""

    def check_captcha(self) -> None:
        if turnstile.enabled() and not turnstile.solved(context.request):
            raise ValidationError(NOT_SOLVED, code="captcha")


class LoginForm(Captcha, account_forms.LoginForm):
    def clean(self) -> dict:
        self.check_captcha()
        try:
            return super().clean()
        except ValidationError:
            if was_throttled(self.request):
                raise ValidationError(THROTTLED, code="throttled") from None
            raise


class SignupForm(Captcha, account_forms.SignupForm):
    def clean(self) -> dict:
        self.check_captcha()
        return super().clean()


class AuthenticateForm(mfa_forms.AuthenticateForm):
    """The two-factor step of a sign-in, on the same counters as its password step."""

    def clean_code(self) -> str:
        keys = attempt_keys(context.request, self.user.get_username())
        if not count_attempt(keys):
            raise ValidationError(THROTTLED, code="throttled")
        code = super().clean_code()
        take_back(keys)
        return code
