"""The registration rules, for allauth's sign-up and a first social sign-in alike: open only with
REGISTER_ENABLED, email addresses only from EMAIL_DOMAIN_WHITELIST's domains (when set: a provider's address
outside it sends the new user to the sign-up form to give another), and a new account's credits
(billing.accounts.invitations) once it is ready. allauth's social adapter asks this account adapter whether
sign-up is open."""

from allauth.account import app_settings, stages
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.app_settings import EmailVerificationMethod
from allauth.account.models import EmailAddress
from allauth.account.signals import email_confirmed, user_signed_up
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialAccount, SocialLogin
from django.conf import settings
from django.core.exceptions import ValidationError
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.translation import gettext as _

from billing.accounts import invitations
from billing.models import SignUp, User

INVITE_SESSION_KEY = "invite_code"  # set by the invite link (billing.console.views.invite), read at sign-up


def check_email_domain(email: str) -> None:
    domain = email.rpartition("@")[2].lower()
    if settings.EMAIL_DOMAIN_WHITELIST and domain not in settings.EMAIL_DOMAIN_WHITELIST:
        allowed = ", ".join(settings.EMAIL_DOMAIN_WHITELIST)
        raise ValidationError(_("Only addresses at these domains can be used: %(domains)s.") % {"domains": allowed})


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return settings.REGISTER_ENABLED

    def clean_email(self, email: str) -> str:
        check_email_domain(email)
        return super().clean_email(email)

    def get_login_stages(self) -> list[str]:
        return [
            f"{__name__}.{EmailVerificationStage.__name__}" if path.endswith(".EmailVerificationStage") else path
            for path in super().get_login_stages()
        ]


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """one-api kept a GitHub user's login name where allauth keeps the numeric id: an imported account
        (gateway_project.oneapi_import) is found by the login name on its first sign-in and takes the id."""
        account = sociallogin.account
        login_name = account.extra_data.get("login") if account.provider == "github" else None
        if sociallogin.is_existing or not login_name:
            return
        if SocialAccount.objects.filter(provider="github", uid=login_name).update(uid=account.uid):
            sociallogin.lookup()


class EmailVerificationStage(stages.EmailVerificationStage):
    """EMAIL_VERIFICATION_REQUIRED holds back an account that signed itself up until its email is verified (and
    its credits paid); an operator's or an imported account signs in as it always did, with or without one."""

    def handle(self) -> tuple:
        if not SignUp.objects.filter(user_id=self.login.user.pk, credited_at__isnull=True).exists():
            self.login.email_verification = EmailVerificationMethod.OPTIONAL
        return super().handle()


def _ready(user: User) -> bool:
    """Whether a new account has earned its credits: it has a verified email, or none is required."""
    mandatory = app_settings.EMAIL_VERIFICATION == EmailVerificationMethod.MANDATORY
    return not mandatory or EmailAddress.objects.filter(user=user, verified=True).exists()


@receiver(user_signed_up)
def signed_up(request: HttpRequest, user: User, **_kwargs: object) -> None:
    invitations.record_sign_up(user, request.session.get(INVITE_SESSION_KEY))
    if _ready(user):
        invitations.credit_sign_up(user.pk)


@receiver(email_confirmed)
def confirmed(request: HttpRequest, email_address: EmailAddress, **_kwargs: object) -> None:
    invitations.credit_sign_up(email_address.user_id)


def template_context(request: HttpRequest) -> dict:
    """A context processor: whether the sign-in page offers to sign up."""
    return {"register_enabled": settings.REGISTER_ENABLED}
