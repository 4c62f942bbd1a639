"""Accounts in a real headless browser against the live server (in this process, so Django's locmem backend
captures the mail): sign-up through an invite link with email verification, credited once however often the
link is replayed; password reset by email; TOTP enrolment and the two-step sign-in; sign-in with an OpenID
Connect provider (a fake IdP started by the test)."""

import re
import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from allauth.socialaccount.models import SocialAccount
from django.core import mail
from django.core.cache import cache

from billing.accounts import invitations
from billing.models import Log, User
from tests.support.browser import By, needs_browser, screenshot, wait
from tests.support.fakes import oidc_provider

pytestmark = [pytest.mark.django_db(transaction=True), needs_browser]

NEW_USER, INVITER, INVITEE = 1_000, 300, 200


@pytest.fixture
def open_signup(settings):
    settings.REGISTER_ENABLED = True
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.QUOTA_FOR_NEW_USER, settings.QUOTA_FOR_INVITER, settings.QUOTA_FOR_INVITEE = NEW_USER, INVITER, INVITEE
    return settings


def send_form(driver, **fields: str) -> None:
    """Fill the page's first account form by field name and press its submit button."""
    form = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "main form"))
    for name, value in fields.items():
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def heading(driver) -> str:
    return driver.find_element(By.TAG_NAME, "h1").text


def link_in_last_mail(pattern: str) -> str:
    return re.search(pattern, wait(None, lambda _: mail.outbox and mail.outbox[-1].body))[0]


def sign_in(driver, base: str, login: str, password: str) -> None:
    driver.get(f"{base}/accounts/login/")
    send_form(driver, login=login, password=password)


def test_sign_up_through_an_invite_link_verify_the_email_and_be_credited_once(live_server, browser, open_signup, alice):
    base = live_server.url
    browser.get(f"{base}/console/invite/{invitations.invite_code(alice)}/")
    wait(browser, lambda d: d.current_url.endswith("/accounts/signup/"))
    screenshot(browser, "accounts-01-sign-up")
    send_form(browser, email="erin@example.com", username="erin", password1="a-long-pass-phrase")
    browser.find_element(By.NAME, "password2").send_keys("a-long-pass-phrase")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait(browser, lambda d: d.current_url.endswith("/accounts/confirm-email/"))
    screenshot(browser, "accounts-02-verification-sent")
    erin = User.objects.get(username="erin")
    assert erin.quota == 0  # nothing before the address is verified

    link = link_in_last_mail(r"http://[^\s]+/accounts/confirm-email/[^/\s]+/")
    browser.get(link)
    screenshot(browser, "accounts-03-confirm-email")
    send_form(browser)
    wait(browser, lambda d: "/accounts/confirm-email/" not in d.current_url)
    browser.get(link)  # the link replayed
    wait(browser, lambda d: "expired or is invalid" in d.find_element(By.TAG_NAME, "main").text)
    sign_in(browser, base, "erin", "a-long-pass-phrase")
    wait(browser, lambda d: d.current_url == f"{base}/console/")
    assert User.objects.get(pk=erin.pk).quota == NEW_USER + INVITEE
    assert User.objects.get(pk=alice.pk).quota == alice.quota + INVITER
    assert Log.objects.filter(type=Log.Type.MANAGE).count() == 3

    browser.delete_all_cookies()
    sign_in(browser, base, "alice", "alice-pass")
    browser.get(f"{base}/console/account/")
    assert wait(browser, lambda d: d.find_element(By.ID, "invitees")).text == "1"
    assert browser.find_element(By.ID, "earned").text == str(INVITER)
    screenshot(browser, "accounts-04-invitations")


def test_password_reset_by_email(live_server, browser, alice):
    alice.emailaddress_set.create(email="alice@example.com", verified=True, primary=True)
    base = live_server.url
    browser.get(f"{base}/accounts/login/")
    browser.find_element(By.LINK_TEXT, "Forgot your password?").click()
    send_form(browser, email="alice@example.com")
    wait(browser, lambda d: "/accounts/password/reset/done/" in d.current_url)
    browser.get(link_in_last_mail(r"http://[^\s]+/accounts/password/reset/key/[^\s]+/"))
    send_form(browser, password1="a-new-long-phrase", password2="a-new-long-phrase")
    wait(browser, lambda d: "/accounts/password/reset/key/done/" in d.current_url)
    screenshot(browser, "accounts-05-password-reset-done")
    sign_in(browser, base, "alice", "a-new-long-phrase")
    wait(browser, lambda d: d.current_url == f"{base}/console/")


def test_totp_enrolment_then_the_two_step_sign_in(live_server, browser, root):
    base = live_server.url
    sign_in(browser, base, "root", "root-pass")
    wait(browser, lambda d: d.current_url.startswith(f"{base}/console/"))
    browser.get(f"{base}/console/account/")
    browser.find_element(By.LINK_TEXT, "Two-factor authentication").click()
    browser.get(f"{base}/accounts/2fa/totp/activate/")
    send_form(browser, password="root-pass")  # allauth asks for the password again before a security change
    secret = wait(browser, lambda d: d.find_element(By.ID, "authenticator_secret")).get_attribute("value")
    screenshot(browser, "accounts-06-totp-activate")
    send_form(browser, code=code_now(secret))
    wait(browser, lambda d: "/accounts/2fa/" in d.current_url and "activate" not in d.current_url)

    browser.delete_all_cookies()
    browser.get(f"{base}/admin/")  # admin's sign-in is the same flow
    wait(browser, lambda d: "/accounts/login/" in d.current_url)
    send_form(browser, login="root", password="root-pass")
    wait(browser, lambda d: d.current_url.endswith("/accounts/2fa/authenticate/"))
    screenshot(browser, "accounts-07-totp-step")
    # The enrolment spent this period's code (allauth keeps it in the cache, as used, until the period ends); a
    # person would wait for the next one, the test forgets it.
    cache.clear()
    send_form(browser, code=code_now(secret))
    wait(browser, lambda d: d.current_url == f"{base}/admin/")
    screenshot(browser, "accounts-08-admin-after-two-factor")


def code_now(secret: str) -> str:
    """What an authenticator app shows now (allauth's HOTP over the 30-second counter)."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


@pytest.fixture(scope="module")
def idp() -> oidc_provider.FakeOIDC:
    return oidc_provider.start()


def test_sign_in_with_an_openid_connect_provider(live_server, browser, open_signup, idp):
    open_signup.SOCIALACCOUNT_PROVIDERS = idp.app_settings()
    base = live_server.url
    browser.get(f"{base}/accounts/login/")
    screenshot(browser, "accounts-09-sign-in-with-provider")
    browser.find_element(By.LINK_TEXT, "Corp SSO").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "main form button[type=submit]"))
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()  # "Continue" to the IdP
    wait(browser, lambda d: d.current_url == f"{base}/console/")
    jane = SocialAccount.objects.get(provider="sso").user
    assert (jane.email, User.objects.get(pk=jane.pk).quota) == ("jane@corp.example", NEW_USER)


def test_a_passkey_added_in_the_account_pages_signs_in_without_a_password(live_server, browser, alice):
    """Chromium's virtual authenticator stands in for a phone or a security key (http://localhost is a secure
    origin, as WebAuthn requires)."""
    from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions  # after the skip

    browser.add_virtual_authenticator(
        VirtualAuthenticatorOptions(
            protocol=VirtualAuthenticatorOptions.Protocol.CTAP2,
            transport=VirtualAuthenticatorOptions.Transport.INTERNAL,
            has_resident_key=True,
            has_user_verification=True,
            is_user_verified=True,
        )
    )
    base = live_server.url  # http://localhost:PORT
    sign_in(browser, base, "alice", "alice-pass")
    wait(browser, lambda d: d.current_url == f"{base}/console/")
    browser.get(f"{base}/accounts/2fa/webauthn/add/")
    send_form(browser, password="alice-pass")  # allauth asks for the password again before a security change
    form = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "main form"))
    form.find_element(By.NAME, "name").send_keys("laptop")
    form.find_element(By.NAME, "passwordless").click()
    screenshot(browser, "accounts-10-add-passkey")
    browser.find_element(By.ID, "mfa_webauthn_add").click()
    wait(browser, lambda d: "/accounts/2fa/webauthn/add/" not in d.current_url)
    assert Authenticator.objects.filter(user=alice, type=Authenticator.Type.WEBAUTHN).exists()

    browser.delete_all_cookies()
    browser.get(f"{base}/accounts/login/")
    wait(browser, lambda d: d.find_element(By.ID, "passkey_login")).click()
    wait(browser, lambda d: d.current_url == f"{base}/console/")
