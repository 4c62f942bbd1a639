"""`/` is a real page: the console's sign-in form and the operators' addresses; admin's "View site" leads there."""

import pytest
from django.test import Client, override_settings

from billing.models import User

pytestmark = pytest.mark.django_db


def test_a_visitor_gets_the_sign_in_form_and_the_operators_addresses():
    response = Client().get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'action="/accounts/login/"' in page and 'name="password"' in page
    assert "http://testserver/v1" in page
    assert 'href="/admin/"' in page and 'href="/api/docs"' in page
    assert 'href="/static/console/console.css"' in page


@override_settings(SERVER_ADDRESS="https://gw.example.com")
def test_the_base_url_is_the_configured_server_address():
    assert "https://gw.example.com/v1" in Client().get("/").content.decode()


def test_the_form_signs_a_user_in_to_the_console():
    User.objects.create_user("dora", password="dora-pass-123")
    client = Client()
    response = client.post("/accounts/login/", {"login": "dora", "password": "dora-pass-123", "next": "/console/"})
    assert (response.status_code, response["Location"]) == (302, "/console/")
    assert client.get("/")["Location"] == "/console/"


def test_an_operator_signed_in_sees_the_addresses_and_the_way_to_the_console():
    client = Client()
    client.force_login(User.objects.create_superuser("root-op", password="x"))
    page = client.get("/").content.decode()
    assert 'id="signed-in"' in page and 'href="/console/"' in page and 'href="/api/docs"' in page
    assert 'id="login-form"' not in page


def test_admins_view_site_link_leads_to_the_home_page():
    client = Client()
    client.force_login(User.objects.create_superuser("root-op", password="x"))
    assert 'href="/">View site' in client.get("/admin/").content.decode()


@pytest.mark.parametrize(("method", "status"), [("head", 200), ("post", 405), ("put", 405), ("delete", 405)])
def test_only_get_and_head(method, status):
    assert getattr(Client(), method)("/").status_code == status
