"""Admin and console logins are throttled after repeated failures; pages carry security headers."""

import threading

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.cache import cache
from django.db import connection
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


def login(client: Client, path: str, password: str) -> bool:
    """True when the login succeeded (a redirect away from the form)."""
    response = client.post(path, {"login": "root", "password": password})
    return response.status_code == 302


def test_five_failures_lock_the_account_even_for_the_right_password(root):
    path = "/accounts/login/"
    client = Client()
    for _ in range(5):
        assert not login(client, path, "wrong")
    assert not login(Client(), path, "root-pass")
    cache.clear()  # the lockout window has passed
    assert login(Client(), path, "root-pass")


def test_failures_from_one_ip_lock_that_ip_for_other_usernames(root, alice):
    client = Client(REMOTE_ADDR="198.51.100.7")
    for name in ("a", "b", "c", "d", "e"):
        client.post("/accounts/login/", {"login": name, "password": "x"})
    response = client.post("/accounts/login/", {"login": "alice", "password": "alice-pass"})
    assert response.status_code == 200  # the form again
    assert (
        Client(REMOTE_ADDR="198.51.100.8")
        .post("/accounts/login/", {"login": "alice", "password": "alice-pass"})
        .status_code
        == 302
    )


class CountedHasher:
    """Counts the password checks PBKDF2 runs, and the most that ran at once."""

    def __init__(self) -> None:
        self.checks = self.running = self.most_at_once = 0
        self.lock = threading.Lock()
        self.verify = PBKDF2PasswordHasher.verify

    def __call__(self, hasher: PBKDF2PasswordHasher, password: str, encoded: str) -> bool:
        with self.lock:
            self.checks += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return self.verify(hasher, password, encoded)
        finally:
            with self.lock:
                self.running -= 1


@pytest.fixture
def hasher(monkeypatch) -> CountedHasher:
    counted = CountedHasher()
    monkeypatch.setattr(
        PBKDF2PasswordHasher, "verify", lambda hasher, password, encoded: counted(hasher, password, encoded)
    )
    return counted


def logins_at_once(path: str, passwords: list[str]) -> list[bool]:
    """Each password tried for root in a thread of its own, all released together; which succeeded."""
    start = threading.Barrier(len(passwords))
    succeeded = [False] * len(passwords)

    def attempt(number: int) -> None:
        client = Client()
        start.wait()
        try:
            succeeded[number] = login(client, path, passwords[number])
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(number,)) for number in range(len(passwords))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return succeeded


@pytest.mark.backend
@pytest.mark.cache
def test_twenty_wrong_passwords_and_the_right_one_at_once_check_at_most_five(root, hasher):
    path = "/accounts/login/"
    succeeded = logins_at_once(path, ["wrong"] * 20 + ["root-pass"])
    assert hasher.checks <= 5 and sum(succeeded) <= 1
    assert hasher.most_at_once == 1  # one password check at a time in a process
    assert not login(Client(), path, "root-pass")  # and the lockout holds
    assert hasher.checks <= 5  # refused without a hash


@pytest.mark.backend
@pytest.mark.cache
def test_a_login_that_succeeds_does_not_count_towards_the_lockout(root):
    client = Client()
    for _ in range(4):
        assert not login(client, "/accounts/login/", "typo")
    for _ in range(5):
        assert login(Client(), "/accounts/login/", "root-pass")
    assert not login(client, "/accounts/login/", "typo")  # the fifth failure
    assert not login(Client(), "/accounts/login/", "root-pass")


def test_console_and_admin_pages_carry_security_headers():
    for path in ("/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"):
        response = Client().get(path)
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert "csrftoken" in response.cookies
