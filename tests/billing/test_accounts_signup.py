"""Self-service sign-up (issue 25): closed unless REGISTER_ENABLED, the email domain allow-list, email
verification before a new account's credits, invitations credited once, and the sign-in rules around it
(operators' accounts without an email still sign in; Turnstile fails closed)."""

import re
import threading

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.db import connection
from django.test import Client

from billing.accounts import invitations
from billing.models import Log, SignUp, User
from tests.support.fakes import turnstile_verifier

pytestmark = pytest.mark.django_db

NEW_USER, INVITER, INVITEE = 1_000, 300, 200


@pytest.fixture
def open_signup(settings):
    settings.REGISTER_ENABLED = True
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.QUOTA_FOR_NEW_USER = NEW_USER
    settings.QUOTA_FOR_INVITER = INVITER
    settings.QUOTA_FOR_INVITEE = INVITEE
    return settings


def sign_up(client: Client, username: str = "erin", email: str = "erin@example.com"):
    form = {"username": username, "email": email, "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}
    return client.post("/accounts/signup/", form)


def confirmation_path(message) -> str:
    return re.search(r"http://testserver(/accounts/confirm-email/[^/\s]+/)", message.body)[1]


def sign_up_logs(user: User) -> list[tuple[int, str]]:
    return list(
        Log.objects.filter(user_id=user.pk, type=Log.Type.MANAGE).order_by("id").values_list("quota", "content")
    )


def test_sign_up_is_closed_by_default():
    client = Client()
    assert "Sign Up Closed" in client.get("/accounts/signup/").content.decode()
    sign_up(client)
    assert not User.objects.filter(username="erin").exists()
    assert "Create an account" not in client.get("/accounts/login/").content.decode()


def test_a_new_account_is_credited_once_its_email_is_verified(open_signup):
    client = Client()
    response = sign_up(client)
    assert (response.status_code, response["Location"]) == (302, "/accounts/confirm-email/")
    erin = User.objects.get(username="erin")
    assert erin.quota == 0 and SignUp.objects.get(user=erin).credited_at is None
    assert client.get("/console/").status_code == 302  # not signed in before the address is verified

    path = confirmation_path(mail.outbox[-1])
    assert client.post(path).status_code == 302
    assert client.post(path).status_code in (302, 404)  # the link replayed
    erin.refresh_from_db()
    assert erin.quota == NEW_USER and EmailAddress.objects.get(user=erin).verified
    assert sign_up_logs(erin) == [
        (NEW_USER, f"sign-up changed quota by +{NEW_USER} to {NEW_USER}: starting quota of a new account")
    ]


def test_without_required_verification_the_credit_comes_at_sign_up(open_signup):
    open_signup.ACCOUNT_EMAIL_VERIFICATION = "optional"
    client = Client()
    assert sign_up(client)["Location"] == "/console/"
    assert User.objects.get(username="erin").quota == NEW_USER
    assert client.get("/console/").status_code == 200


def test_an_invitation_credits_both_sides_once(open_signup, alice):
    code = invitations.invite_code(alice)
    client = Client()
    assert client.get(f"/console/invite/{code}/")["Location"] == "/accounts/signup/"
    sign_up(client)
    sign_up(client)  # the form sent twice
    erin = User.objects.get(username="erin")
    path = confirmation_path(mail.outbox[-1])
    for _ in range(3):
        client.post(path)
    assert invitations.credit_sign_up(erin.pk) is False  # paid already
    erin.refresh_from_db()
    before = User.objects.get(pk=alice.pk).quota
    assert erin.quota == NEW_USER + INVITEE and before == alice.quota + INVITER
    assert [quota for quota, _ in sign_up_logs(erin)] == [NEW_USER, INVITEE]
    assert sign_up_logs(alice) == [(INVITER, f"sign-up changed quota by +{INVITER} to {before}: invited erin")]
    assert invitations.invited_stats(alice) == {"invitees": 1, "earned": INVITER}


def test_the_console_shows_the_invite_link_and_what_it_brought(open_signup, alice):
    client = Client()
    client.force_login(alice)
    page = client.get("/console/account/").content.decode()
    code = User.objects.get(pk=alice.pk).invite_code
    assert f"http://testserver/console/invite/{code}/" in page and 'id="invitees">0<' in page
    assert invitations.invite_code(User.objects.get(pk=alice.pk)) == code  # made once


def test_an_unknown_invite_code_signs_up_without_an_inviter(open_signup):
    client = Client()
    client.get("/console/invite/nosuchcode/")
    sign_up(client)
    assert SignUp.objects.get(user__username="erin").inviter is None


def test_the_email_domain_allow_list(open_signup):
    open_signup.EMAIL_DOMAIN_WHITELIST = ["example.com", "corp.example"]
    page = sign_up(Client(), "mallory", "mallory@elsewhere.test").content.decode()
    assert "Only addresses at these domains can be used: example.com, corp.example." in page
    assert not User.objects.filter(username="mallory").exists()
    assert sign_up(Client(), "erin", "erin@corp.example").status_code == 302


def test_an_operators_account_without_email_signs_in_while_verification_is_required(open_signup):
    User.objects.create_user("dora", password="dora-pass-123")
    response = Client().post("/accounts/login/", {"login": "dora", "password": "dora-pass-123"})
    assert response["Location"] == "/console/"


def test_sign_in_by_email(open_signup):
    dora = User.objects.create_user("dora", email="dora@example.com", password="dora-pass-123")
    EmailAddress.objects.create(user=dora, email="dora@example.com", verified=True, primary=True)
    response = Client().post("/accounts/login/", {"login": "dora@example.com", "password": "dora-pass-123"})
    assert response["Location"] == "/console/"


def test_password_reset_by_email(alice):
    EmailAddress.objects.create(user=alice, email="alice@example.com", verified=True, primary=True)
    client = Client()
    assert client.post("/accounts/password/reset/", {"email": "alice@example.com"}).status_code == 302
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+/)", mail.outbox[-1].body)[1]
    form_page = client.get(link)
    assert form_page.status_code == 302  # allauth moves the key into the session
    new = {"password1": "another-long-phrase", "password2": "another-long-phrase"}
    assert client.post(form_page["Location"], new).status_code == 302
    assert Client().post("/accounts/login/", {"login": "alice", "password": "another-long-phrase"}).status_code == 302


@pytest.fixture(scope="module")
def turnstile():
    return turnstile_verifier.start()


def test_turnstile_lets_a_solved_sign_in_through(settings, turnstile, alice):
    for name, value in turnstile.settings().items():
        setattr(settings, name, value)
    assert turnstile_verifier.SITE_KEY in Client().get("/accounts/login/").content.decode()
    form = {"login": "alice", "password": "alice-pass", "cf-turnstile-response": turnstile_verifier.GOOD_TOKEN}
    assert Client().post("/accounts/login/", form).status_code == 302
    assert turnstile.asked[-1]["secret"] == turnstile_verifier.SECRET


@pytest.mark.parametrize("token", ["", "forged"])
def test_turnstile_refuses_a_sign_in_without_a_solved_challenge(settings, turnstile, alice, token):
    for name, value in turnstile.settings().items():
        setattr(settings, name, value)
    response = Client().post(
        "/accounts/login/", {"login": "alice", "password": "alice-pass", "cf-turnstile-response": token}
    )
    assert response.status_code == 200 and "Please complete the CAPTCHA" in response.content.decode()


def test_turnstile_fails_closed_when_cloudflare_cannot_be_reached(open_signup, turnstile):
    open_signup.TURNSTILE_SITE_KEY = turnstile_verifier.SITE_KEY
    open_signup.TURNSTILE_SECRET_KEY = turnstile_verifier.SECRET
    open_signup.TURNSTILE_VERIFY_URL = "http://127.0.0.1:9/siteverify"  # the discard port: nothing listens
    form = {"username": "erin", "email": "erin@example.com", "password1": "a-long-pass-phrase"}
    form.update(password2=form["password1"], **{"cf-turnstile-response": turnstile_verifier.GOOD_TOKEN})
    response = Client().post("/accounts/signup/", form)
    assert "Please complete the CAPTCHA" in response.content.decode()
    assert not User.objects.filter(username="erin").exists()


@pytest.mark.backend
@pytest.mark.django_db(transaction=True)
def test_concurrent_credits_of_one_sign_up_pay_once(open_signup, alice, bob):
    invitations.record_sign_up(bob, invitations.invite_code(alice))
    start = threading.Barrier(8)
    paid: list[bool] = []

    def credit() -> None:
        start.wait()
        try:
            paid.append(invitations.credit_sign_up(bob.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=credit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(paid) == [False] * 7 + [True]
    assert User.objects.get(pk=bob.pk).quota == bob.quota + NEW_USER + INVITEE
    assert User.objects.get(pk=alice.pk).quota == alice.quota + INVITER
    assert Log.objects.filter(type=Log.Type.MANAGE).count() == 3
