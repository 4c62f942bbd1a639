"""Two-factor sign-in (allauth.mfa) for the console and admin: the code step after the password, its throttle
(the same counters as the password step), and REQUIRE_STAFF_2FA closing admin to staff without a second factor."""

import time

import pytest
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.test import Client

from billing.models import User

pytestmark = pytest.mark.django_db


def current_code(secret: str) -> str:
    """The authenticator app's code now (allauth's own HOTP over the current 30-second counter)."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def wrong_code(secret: str) -> str:
    return f"{(int(current_code(secret)) + 1) % 1_000_000:06d}"


@pytest.fixture
def root_secret(root: User) -> str:
    secret = generate_totp_secret()
    TOTP.activate(root, secret)
    return secret


def password_step(client: Client, next_path: str = "/admin/") -> str:
    response = client.post(f"/accounts/login/?next={next_path}", {"login": "root", "password": "root-pass"})
    assert response.status_code == 302
    return response["Location"]


def test_admin_sign_in_goes_through_the_code_step(root_secret):
    client = Client()
    assert client.get("/admin/")["Location"] == "/admin/login/?next=/admin/"
    assert client.get("/admin/login/?next=/admin/")["Location"] == "/accounts/login/?next=/admin/"
    assert client.get("/admin/login/")["Location"] == "/accounts/login/?next=/admin/"
    assert password_step(client) == "/accounts/2fa/authenticate/"
    assert client.get("/admin/").status_code == 302  # not signed in yet
    done = client.post("/accounts/2fa/authenticate/", {"code": current_code(root_secret)})
    assert (done.status_code, done["Location"]) == (302, "/admin/")
    assert client.get("/admin/").status_code == 200


def test_five_wrong_codes_lock_the_account_even_for_the_right_code(root_secret):
    client = Client()
    password_step(client)
    for _ in range(5):
        answer = client.post("/accounts/2fa/authenticate/", {"code": wrong_code(root_secret)})
        assert answer.status_code == 200
    refused = client.post("/accounts/2fa/authenticate/", {"code": current_code(root_secret)})
    assert refused.status_code == 200 and "too many failed logins" in refused.content.decode()
    # and the password step too: the code step counts on the same counters
    again = Client().post("/accounts/login/", {"login": "root", "password": "root-pass"})
    assert again.status_code == 200 and "too many failed logins" in again.content.decode()


def test_staff_without_a_second_factor_are_sent_to_set_one_up(settings, root):
    settings.REQUIRE_STAFF_2FA = True
    client = Client()
    client.force_login(root)
    assert client.get("/admin/")["Location"] == "/accounts/2fa/"
    assert client.get("/console/").status_code == 200  # the console stays open
    TOTP.activate(root, generate_totp_secret())
    assert client.get("/admin/").status_code == 200


def test_without_the_setting_staff_use_admin_with_a_password_only(root):
    client = Client()
    password_step(client)
    assert client.get("/admin/").status_code == 200
