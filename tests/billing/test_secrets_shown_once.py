"""A new secret (an API key, an access token, redemption codes) is shown once, on the page that answers
its creation: never cached, never kept in the messages cookie or the session, gone from the next page."""

import re

import pytest
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest
from django.test import Client

from billing.models import AccessToken, ApiKey, Redemption, User, hash_key

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN_SECRETS = re.compile(r'<code class="new-secret">([^<]+)</code>')


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def kept_messages(client: Client) -> list[str]:
    """What the messages framework holds for the client's next page (cookie, then session)."""
    request = HttpRequest()
    request.COOKIES = {name: morsel.value for name, morsel in client.cookies.items()}
    request.session = client.session
    return [str(message) for message in default_storage(request)]


def shown_once(client: Client, response, secrets: list[str], next_page: str) -> None:
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "history.replaceState" in response.content.decode()  # a reload must not create another
    kept = " ".join(kept_messages(client)) + " ".join(str(value) for value in client.session.values())
    assert not any(secret in kept for secret in secrets)
    page = client.get(next_page).content.decode()
    assert not any(secret in page for secret in secrets)


def test_the_console_shows_a_new_key_on_the_answer_to_its_form_only(alice):
    console = signed_in(alice)
    response = console.post("/console/keys/", {"name": "laptop", "remain_quota": "1000"})
    [plain] = re.findall(r'<code id="new-key">(sk-[A-Za-z0-9]{48})</code>', response.content.decode())
    assert hash_key(plain[3:]) == ApiKey.objects.get(name="laptop").key_hash
    shown_once(console, response, [plain], "/console/keys/")


def test_admin_shows_a_new_key_on_the_answer_to_the_add_form_only(root, alice):
    admin = signed_in(root)
    form = {"user": alice.pk, "name": "from-admin", "status": "enabled", "remain_quota": 100, "group": ""}
    response = admin.post("/admin/billing/apikey/add/", form)
    [plain] = ADMIN_SECRETS.findall(response.content.decode())
    token = ApiKey.objects.get(name="from-admin")
    assert hash_key(plain[3:]) == token.key_hash
    shown_once(admin, response, [plain], f"/admin/billing/apikey/{token.pk}/change/")


def test_admin_shows_a_new_access_token_on_the_answer_to_the_add_form_only(root, alice):
    admin = signed_in(root)
    response = admin.post("/admin/billing/accesstoken/add/", {"user": alice.pk, "name": "ops"})
    [plain] = ADMIN_SECRETS.findall(response.content.decode())
    assert AccessToken.objects.get(name="ops").token_hash == hash_key(plain)
    shown_once(admin, response, [plain], "/admin/billing/accesstoken/")


def test_admin_shows_a_new_batch_of_redemption_codes_on_the_answer_to_the_add_form_only(root):
    admin = signed_in(root)
    response = admin.post("/admin/billing/redemption/add/", {"name": "admin-batch", "quota": 70_000, "count": 2})
    codes = ADMIN_SECRETS.findall(response.content.decode())
    assert {hash_key(code) for code in codes} == set(Redemption.objects.values_list("code_hash", flat=True))
    assert len(codes) == 2
    shown_once(admin, response, codes, "/admin/billing/redemption/")
