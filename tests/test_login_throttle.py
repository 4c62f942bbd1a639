"""Admin and console logins are throttled after repeated failures; pages carry security headers."""

import pytest
from django.core.cache import cache
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


def login(client: Client, path: str, password: str) -> bool:
    """True when the login succeeded (a redirect away from the form)."""
    response = client.post(path, {"username": "root", "password": password})
    return response.status_code == 302


@pytest.mark.parametrize("path", ["/admin/login/", "/console/login/"])
def test_five_failures_lock_the_account_even_for_the_right_password(root, path):
    client = Client()
    for _ in range(5):
        assert not login(client, path, "wrong")
    assert not login(Client(), path, "root-pass")
    cache.clear()  # the lockout window has passed
    assert login(Client(), path, "root-pass")


def test_failures_from_one_ip_lock_that_ip_for_other_usernames(root, alice):
    client = Client(REMOTE_ADDR="198.51.100.7")
    for name in ("a", "b", "c", "d", "e"):
        client.post("/console/login/", {"username": name, "password": "x"})
    response = client.post("/console/login/", {"username": "alice", "password": "alice-pass"})
    assert response.status_code == 200  # the form again
    assert (
        Client(REMOTE_ADDR="198.51.100.8")
        .post("/console/login/", {"username": "alice", "password": "alice-pass"})
        .status_code
        == 302
    )


def test_console_and_admin_pages_carry_security_headers():
    for path in ("/console/login/", "/admin/login/"):
        response = Client().get(path)
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert "csrftoken" in response.cookies
