"""The user console (server-rendered): own keys, usage, top-up and redemption, behind a session login."""

import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from billing import ledger
from billing.models import ApiKey, Log, TopUpOrder, User, hash_key
from billing.payments import redemptions, topup
from tests.support.factories import ALICE_QUOTA, make_key
from tests.support.wechatpay_world import configure, deliver, unconfigure, wechatpay_server

pytestmark = pytest.mark.django_db(transaction=True)

NEW_KEY = re.compile(r'<code id="new-key">(sk-[A-Za-z0-9]{48})</code>')


@pytest.fixture
def console(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def consume(user: User, token: ApiKey | None = None, model: str = "gpt-4o", quota: int = 1234, days_ago: int = 0):
    ledger.write(
        Log(
            type=Log.Type.CONSUME,
            user_id=user.pk,
            token_id=token.pk if token else None,
            token_name=token.name if token else "",
            model=model,
            prompt_tokens=10,
            completion_tokens=5,
            quota=quota,
            created_at=timezone.now() - timedelta(days=days_ago),
            request_id=uuid.uuid4().hex,
        )
    )


def test_pages_need_a_login_and_the_login_form_signs_in(alice):
    client = Client()
    response = client.get("/console/keys/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/?next=/console/keys/")
    assert 'name="csrfmiddlewaretoken"' in client.get("/accounts/login/").content.decode()
    signed_in = client.post("/accounts/login/", {"login": "alice", "password": "alice-pass", "next": "/console/keys/"})
    assert signed_in.status_code == 302 and signed_in.url == "/console/keys/"
    assert client.get("/console/keys/").status_code == 200
    assert client.post("/console/logout/").status_code == 302
    assert client.get("/console/").status_code == 302


def test_a_wrong_password_shows_the_form_again(alice):
    response = Client().post("/accounts/login/", {"login": "alice", "password": "nope"})
    assert (
        response.status_code == 200
        and "username and/or password you specified are not correct" in response.content.decode()
    )


def test_it_creates_a_key_with_limits_and_shows_it_once(console, alice):
    form = {
        "name": "laptop",
        "remain_quota": "50000",
        "expires_at": "2031-01-02T03:04",
        "models": "gpt-4o, gpt-4o-mini",
        "allow_ips": "10.0.0.0/8",
    }
    response = console.post("/console/keys/", form)
    assert response.status_code == 200
    token = ApiKey.objects.get(user=alice, name="laptop")
    assert (token.remain_quota, token.unlimited_quota, token.model_limits) == (50_000, False, ["gpt-4o", "gpt-4o-mini"])
    assert token.allow_ips == ["10.0.0.0/8"] and token.expires_at.year == 2031
    [plain] = NEW_KEY.findall(response.content.decode())
    assert hash_key(plain[3:]) == token.key_hash
    page = console.get("/console/keys/").content.decode()
    assert plain not in page and token.key_hint in page and "laptop" in page


def test_a_refused_key_shows_why(console):
    response = console.post("/console/keys/", {"name": "bad", "allow_ips": "not-an-ip"})
    assert response.status_code == 200 and "is not an IP address" in response.content.decode()
    assert not ApiKey.objects.filter(name="bad").exists()


def test_it_lists_only_own_keys_and_disables_and_deletes_them(console, alice, bob):
    mine, _ = make_key(alice, name="mine")
    theirs, _ = make_key(bob, name="theirs")
    page = console.get("/console/keys/").content.decode()
    assert "mine" in page and "theirs" not in page
    assert console.post(f"/console/keys/{mine.pk}/status", {"status": "disabled"}).status_code == 302
    assert ApiKey.objects.get(pk=mine.pk).status == "disabled"
    assert console.post(f"/console/keys/{theirs.pk}/status", {"status": "disabled"}).status_code == 404
    assert console.post(f"/console/keys/{theirs.pk}/delete").status_code == 404
    assert console.post(f"/console/keys/{mine.pk}/delete").status_code == 302
    assert not ApiKey.objects.filter(pk=mine.pk).exists() and ApiKey.objects.filter(pk=theirs.pk).exists()


def test_forms_are_csrf_protected(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/console/keys/", {"name": "sneaky"}).status_code == 403
    assert client.post("/console/redeem/", {"key": "x"}).status_code == 403
    assert not ApiKey.objects.filter(name="sneaky").exists()


def test_usage_shows_own_logs_filtered_with_a_daily_chart(console, alice, bob):
    key, _ = make_key(alice, name="app")
    consume(alice, key, "gpt-4o", 1000)
    consume(alice, key, "gpt-4o-mini", 300, days_ago=2)
    consume(bob, None, "claude-secret-model", 999)
    page = console.get("/console/usage/").content.decode()
    assert "gpt-4o-mini" in page and "claude-secret-model" not in page
    assert page.count("<rect ") == 30 and "1300 in all" in page
    filtered = console.get("/console/usage/", {"model": "gpt-4o-mini", "token": key.pk}).content.decode()
    assert "300 in all" in filtered and "1 matching row" in filtered
    assert "Nothing logged" in console.get("/console/usage/", {"type": "refund"}).content.decode()


def test_the_overview_shows_the_balance(console, alice):
    page = console.get("/console/").content.decode()
    assert f'<strong id="balance">{ALICE_QUOTA}</strong>' in page and "≈ $20.00" in page


def test_redeeming_a_code_credits_once(console, alice):
    [code] = redemptions.create_batch("gift", 40_000, 1)
    response = console.post("/console/redeem/", {"key": code})
    assert response.status_code == 302
    assert "40,000 quota" in console.get("/console/redeem/").content.decode()
    assert "already been used" in console.post("/console/redeem/", {"key": code}).content.decode()
    assert "No such" in console.post("/console/redeem/", {"key": "nope"}).content.decode()
    assert User.objects.get(pk=alice.pk).quota == ALICE_QUOTA + 40_000


def test_topup_says_payments_are_not_enabled_when_unconfigured(console, settings):
    unconfigure(settings)
    page = console.get("/console/topup/").content.decode()
    assert "Payments are not enabled" in page and "<form" not in page.split("<main>")[1].split("topup-form")[0]
    assert "Payments are not enabled" in console.post("/console/topup/", {"amount": "10"}).content.decode()
    assert not TopUpOrder.objects.exists()


def test_topup_shows_the_qr_code_and_the_status_follows_the_payment(console, alice, bob, settings):
    fake = configure(settings, wechatpay_server())
    response = console.post("/console/topup/", {"amount": "3"})
    order = TopUpOrder.objects.get(user=alice)
    assert response.status_code == 302 and response.url == f"/console/topup/{order.out_trade_no}/"
    page = console.get(response.url).content.decode()
    assert '<div class="qr" id="order-qr"><svg' in page and "3.00 CNY" in page
    status_url = f"/console/topup/{order.out_trade_no}/status"
    assert console.get(status_url).json() == {"status": "pending", "quota": 3 * 68_493}
    deliver(*fake.keys.notification(fake.pay(order.out_trade_no)))
    assert console.get(status_url).json() == {"status": "paid", "quota": 3 * 68_493}
    other = Client()
    other.force_login(bob)
    assert other.get(status_url).status_code == 404 and other.get(response.url).status_code == 404


def test_a_topup_wechat_pay_refuses_shows_the_reason(console, settings):
    fake = configure(settings, wechatpay_server())
    fake.refuse_next.append((403, "NO_AUTH"))
    page = console.post("/console/topup/", {"amount": "3"}).content.decode()
    assert "NO_AUTH" in page and TopUpOrder.objects.get().status == "closed"
    assert topup.reconcile_pending() == 0


def test_staff_get_an_admin_link_and_admin_links_back(root, console):
    staff = Client()
    staff.force_login(root)
    assert 'id="admin-link"' in staff.get("/console/").content.decode()
    assert 'id="admin-link"' not in console.get("/console/").content.decode()
    assert 'href="/console/" id="user-console-link"' in staff.get("/admin/").content.decode()
