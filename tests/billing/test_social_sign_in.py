"""Sign-in with an OpenID Connect provider (a fake IdP started by the test): a first sign-in makes the account
under the registration rules, a returning one signs in, and a signed-in user links and unlinks providers."""

from urllib.parse import urlsplit

import httpx
import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialLogin
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from billing.accounts.signup import SocialAccountAdapter
from billing.models import SignUp, User
from tests.support.fakes import oidc_provider

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/oidc/sso/login/"


@pytest.fixture(scope="module")
def idp() -> oidc_provider.FakeOIDC:
    return oidc_provider.start()


@pytest.fixture
def sso(settings, idp):
    settings.SOCIALACCOUNT_PROVIDERS = idp.app_settings()
    settings.QUOTA_FOR_NEW_USER = 700
    return settings


def through_the_idp(client: Client, idp: oidc_provider.FakeOIDC, **form: str):
    """Start the provider's sign-in, let the IdP send the browser back, and follow that redirect; its answer."""
    to_idp = client.post(LOGIN, form)
    assert to_idp.status_code == 302 and to_idp["Location"].startswith(f"{idp.issuer}/authorize?")
    back = httpx.get(to_idp["Location"], follow_redirects=False)
    assert back.status_code == 302
    callback = urlsplit(back.headers["Location"])
    assert callback.path == "/accounts/oidc/sso/login/callback/"
    return client.get(f"{callback.path}?{callback.query}")


def test_a_first_sign_in_makes_the_account_when_registration_is_open(sso, idp):
    sso.REGISTER_ENABLED = True
    client = Client()
    assert "Corp SSO" in client.get("/accounts/login/").content.decode()
    done = through_the_idp(client, idp)
    assert (done.status_code, done["Location"]) == (302, "/console/")
    account = SocialAccount.objects.get(provider="sso", uid=oidc_provider.PERSON["sub"])
    jane = account.user
    assert EmailAddress.objects.get(user=jane).verified and jane.email == "jane@corp.example"
    assert SignUp.objects.get(user=jane).credited_at is not None and User.objects.get(pk=jane.pk).quota == 700
    assert client.get("/console/").status_code == 200
    # a returning sign-in finds the same account
    assert through_the_idp(Client(), idp)["Location"] == "/console/"
    assert User.objects.filter(email="jane@corp.example").count() == 1


def test_a_first_sign_in_is_refused_while_registration_is_closed(sso, idp):
    done = through_the_idp(Client(), idp)
    assert done.status_code == 200 and "Sign Up Closed" in done.content.decode()
    assert not SocialAccount.objects.exists()


def test_the_email_domain_allow_list_applies_to_social_sign_up(sso, idp):
    sso.REGISTER_ENABLED = True
    sso.EMAIL_DOMAIN_WHITELIST = ["example.com"]
    client = Client()
    assert through_the_idp(client, idp)["Location"] == "/accounts/3rdparty/signup/"  # the address must change
    refused = client.post("/accounts/3rdparty/signup/", {"username": "jane", "email": "jane@corp.example"})
    assert "Only addresses at these domains can be used: example.com." in refused.content.decode()
    assert not SocialAccount.objects.exists()


def test_a_signed_in_user_links_and_unlinks_the_provider(sso, idp, alice):
    # the last provider unlinks only from an account one can still get back into: a password and a verified email
    EmailAddress.objects.create(user=alice, email="alice@example.com", verified=True, primary=True)
    client = Client()
    client.force_login(alice)
    assert through_the_idp(client, idp, process="connect")["Location"] == "/accounts/3rdparty/"
    account = SocialAccount.objects.get(user=alice, provider="sso")
    page = client.get("/accounts/3rdparty/").content.decode()
    assert "Corp SSO" in page
    assert client.post("/accounts/3rdparty/", {"account": account.pk}).status_code == 302
    assert not SocialAccount.objects.filter(user=alice).exists()


def test_an_imported_github_account_is_found_by_its_login_name_and_takes_the_id(settings, alice, rf):
    """one-api kept GitHub login names (import_oneapi stores them as the uid); GitHub's sign-in brings the id."""
    settings.SOCIALACCOUNT_PROVIDERS = {"github": {"APPS": [{"client_id": "gh-client", "secret": "gh-secret"}]}}
    SocialAccount.objects.create(user=alice, provider="github", uid="alice-gh")
    request = rf.get("/accounts/github/login/callback/")
    request.user = AnonymousUser()
    request.session = {}
    arriving = SocialLogin(account=SocialAccount(provider="github", uid="583231", extra_data={"login": "alice-gh"}))
    SocialAccountAdapter().pre_social_login(request, arriving)
    assert arriving.is_existing and arriving.user == alice
    assert SocialAccount.objects.get(user=alice).uid == "583231"
