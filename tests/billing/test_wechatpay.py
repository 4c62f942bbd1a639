"""WeChat Pay top-up: orders against a fake WeChat Pay API, notifications signed and encrypted as WeChat Pay
does, and the reconcile job. Money moves only for a verified, matching payment, and exactly once."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone

from billing.models import AccessToken, Log, TopUpOrder, User
from billing.payments import topup, wechatpay
from tests.support.factories import ALICE_QUOTA
from tests.support.fakes.wechatpay_upstream import (
    APIV3_KEY,
    APPID,
    MCHID,
    NOTIFY_URL,
    FakeWeChatPay,
    new_key,
    paid_transaction,
)
from tests.support.wechatpay_world import configure, deliver, place_order, unconfigure, wechatpay_server

pytestmark = pytest.mark.django_db(transaction=True)

RATE = 68_493


@pytest.fixture
def fake(settings) -> FakeWeChatPay:
    return configure(settings, wechatpay_server())


@pytest.fixture
def alice_token(alice: User) -> str:
    return AccessToken.issue(alice)[1]


def api(method: str, path: str, token: str, body: dict | None = None):
    data = json.dumps(body) if body is not None else None
    return getattr(Client(), method)(
        path, data=data, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
    )


def quota_of(user: User) -> int:
    return User.objects.values_list("quota", flat=True).get(pk=user.pk)


def topup_logs(user: User) -> list[Log]:
    return list(Log.objects.filter(user_id=user.pk, type=Log.Type.TOPUP))


def test_it_places_a_native_order_and_answers_code_url_and_qr_svg(fake, alice, alice_token):
    response = api("post", "/api/topup/wechat", alice_token, {"amount": 10})
    assert response.status_code == 201
    body = response.json()
    order = TopUpOrder.objects.get(out_trade_no=body["out_trade_no"])
    assert (order.user, order.amount_fen, order.quota, order.status) == (alice, 1000, 10 * RATE, "pending")
    assert body["code_url"] == order.code_url and body["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    assert body["qr_svg"].startswith("<svg") and "<path" in body["qr_svg"]
    assert (body["amount_fen"], body["quota"]) == (1000, 10 * RATE)
    [(method, path, sent)] = fake.requests  # the fake answers 401 unless our merchant signature verifies
    assert (method, path) == ("POST", "/v3/pay/transactions/native")
    assert (sent["appid"], sent["mchid"], sent["notify_url"]) == (APPID, MCHID, NOTIFY_URL)
    assert sent["out_trade_no"] == order.out_trade_no and sent["amount"] == {"total": 1000, "currency": "CNY"}
    assert sent["time_expire"].endswith("+08:00") and sent["attach"] == f"user={alice.pk}"


def test_its_order_status_is_visible_to_its_owner_only(fake, alice, alice_token, bob):
    order = place_order(alice)
    assert api("get", f"/api/topup/wechat/{order.out_trade_no}", alice_token).json() == {
        "status": "pending",
        "quota": 10 * RATE,
    }
    bob_token = AccessToken.issue(bob)[1]
    assert api("get", f"/api/topup/wechat/{order.out_trade_no}", bob_token).status_code == 404


def test_an_amount_below_the_minimum_is_422(fake, alice_token, settings):
    settings.TOPUP_MIN_YUAN = 5
    response = api("post", "/api/topup/wechat", alice_token, {"amount": 4})
    assert response.status_code == 422 and "amount" in response.json()["detail"]
    assert not TopUpOrder.objects.exists() and not fake.requests


def test_unconfigured_payments_answer_503_and_store_nothing(settings, alice_token):
    unconfigure(settings)
    response = api("post", "/api/topup/wechat", alice_token, {"amount": 10})
    assert response.status_code == 503 and response.json() == {"detail": "payments are not enabled"}
    assert not TopUpOrder.objects.exists()


def test_a_partial_configuration_disables_payments_and_names_what_is_missing(fake, settings):
    settings.WECHATPAY_APIV3_KEY = ""
    with pytest.raises(wechatpay.PaymentsDisabled, match="WECHATPAY_APIV3_KEY"):
        wechatpay.load_config()


def test_a_refused_order_is_closed_and_answers_502(fake, alice, alice_token):
    fake.refuse_next.append((400, "APPID_MCHID_NOT_MATCH"))
    response = api("post", "/api/topup/wechat", alice_token, {"amount": 10})
    assert response.status_code == 502 and "APPID_MCHID_NOT_MATCH" in response.json()["detail"]
    assert TopUpOrder.objects.get().status == "closed"


def test_a_verified_notification_credits_once_with_a_topup_log_and_is_acknowledged(fake, alice):
    order = place_order(alice)
    payment = fake.pay(order.out_trade_no)
    response = deliver(*fake.keys.notification(payment))
    assert response.status_code == 200 and response.json()["code"] == "SUCCESS"
    order.refresh_from_db()
    assert (order.status, order.transaction_id) == ("paid", payment["transaction_id"]) and order.paid_at
    assert quota_of(alice) == ALICE_QUOTA + 10 * RATE
    [log] = topup_logs(alice)
    assert (log.quota, log.request_id) == (10 * RATE, order.out_trade_no)
    assert payment["transaction_id"] in log.content
    again = deliver(*fake.keys.notification(payment))  # WeChat Pay redelivers until it sees our answer
    assert again.status_code == 200 and quota_of(alice) == ALICE_QUOTA + 10 * RATE and len(topup_logs(alice)) == 1


@pytest.mark.backend
def test_three_concurrent_deliveries_credit_once(fake, alice):
    order = place_order(alice)
    body, headers = fake.keys.notification(fake.pay(order.out_trade_no))
    start = threading.Barrier(3)
    answers: list[int] = []

    def deliver_concurrently() -> None:
        try:
            start.wait()
            answers.append(deliver(body, headers).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver_concurrently) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [200, 200, 200]
    assert quota_of(alice) == ALICE_QUOTA + 10 * RATE
    assert len(topup_logs(alice)) == 1


def assert_rejected(response, alice: User, order: TopUpOrder, reason: str, caplog) -> None:
    assert response.status_code == 400 and response.json() == {"code": "FAIL", "message": "失败"}
    assert reason in caplog.text  # why is for the server's log only
    assert quota_of(alice) == ALICE_QUOTA and not topup_logs(alice)
    assert TopUpOrder.objects.get(pk=order.pk).status == "pending"


def test_a_forged_signature_is_rejected(fake, alice, caplog):
    order = place_order(alice)
    body, headers = fake.keys.notification(fake.pay(order.out_trade_no), key=new_key())
    assert_rejected(deliver(body, headers), alice, order, "signature verification", caplog)


def test_wechat_pays_signtest_probe_is_rejected(fake, alice, caplog):
    order = place_order(alice)
    body, headers = fake.keys.notification(fake.pay(order.out_trade_no))
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    assert_rejected(deliver(body, headers), alice, order, "signature verification", caplog)


def test_a_tampered_body_is_rejected(fake, alice, caplog):
    order = place_order(alice)
    body, headers = fake.keys.notification(fake.pay(order.out_trade_no))
    tampered = body.replace('"create_time": "2024-06-01T10:00:01', '"create_time": "2024-06-01T10:00:02')
    assert tampered != body
    assert_rejected(deliver(tampered, headers), alice, order, "signature verification", caplog)


def test_a_notification_encrypted_with_another_apiv3_key_is_rejected(fake, alice, caplog):
    order = place_order(alice)
    body, headers = fake.keys.notification(fake.pay(order.out_trade_no), apiv3_key=APIV3_KEY[::-1])
    assert_rejected(deliver(body, headers), alice, order, "decryption failed", caplog)


def test_a_replayed_old_notification_is_rejected(fake, alice, caplog):
    order = place_order(alice)
    body, headers = fake.keys.notification(fake.pay(order.out_trade_no), timestamp=int(time.time()) - 301)
    assert_rejected(deliver(body, headers), alice, order, "window", caplog)


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [("Wechatpay-Serial", "PUB_KEY_ID_OTHER", "unknown Wechatpay-Serial"), ("Wechatpay-Signature-Type", "", "type")],
)
def test_a_wrong_serial_or_signature_type_is_rejected(fake, alice, header, value, reason, caplog):
    order = place_order(alice)
    body, headers = fake.keys.notification(fake.pay(order.out_trade_no))
    assert_rejected(deliver(body, {**headers, header: value}), alice, order, reason, caplog)


def test_a_wrong_amount_is_rejected(fake, alice, caplog):
    order = place_order(alice)
    body, headers = fake.keys.notification(paid_transaction(order.out_trade_no, 1))
    assert_rejected(deliver(body, headers), alice, order, "not the order's amount", caplog)


def test_an_unknown_order_is_rejected(fake, alice, caplog):
    order = place_order(alice)
    body, headers = fake.keys.notification(paid_transaction("TU20240601NOSUCHORDER00", order.amount_fen))
    assert_rejected(deliver(body, headers), alice, order, "unknown order", caplog)


def test_a_payment_to_another_merchant_is_rejected(fake, alice, caplog):
    order = place_order(alice)
    body, headers = fake.keys.notification(paid_transaction(order.out_trade_no, order.amount_fen, mchid="1999999999"))
    assert_rejected(deliver(body, headers), alice, order, "merchant 1999999999", caplog)


def test_notifications_are_rejected_while_payments_are_unconfigured(fake, alice, settings, caplog):
    order = place_order(alice)
    body, headers = fake.keys.notification(fake.pay(order.out_trade_no))
    unconfigure(settings)
    assert_rejected(deliver(body, headers), alice, order, "not enabled", caplog)


def test_a_notification_that_fails_inside_the_gateway_gets_the_generic_failure_and_is_retried_later(
    fake, alice, caplog, monkeypatch
):
    order = place_order(alice)
    payment = fake.pay(order.out_trade_no)

    def database_gone(*args, **kwargs):
        raise OperationalError("could not connect to server at db.internal:5432")

    monkeypatch.setattr(topup, "mark_paid", database_gone)
    response = deliver(*fake.keys.notification(payment))
    assert response.status_code == 500 and response.json() == {"code": "FAIL", "message": "失败"}
    assert "db.internal" in caplog.text and quota_of(alice) == ALICE_QUOTA
    monkeypatch.undo()
    assert deliver(*fake.keys.notification(payment)).status_code == 200  # WeChat Pay's retry
    assert quota_of(alice) == ALICE_QUOTA + 10 * RATE


def age(order: TopUpOrder, minutes: int) -> None:
    earlier = timezone.now() - timedelta(minutes=minutes)
    TopUpOrder.objects.filter(pk=order.pk).update(created_at=earlier, expires_at=earlier + topup.ORDER_TTL)


def test_reconcile_credits_a_paid_order_whose_notification_never_came(fake, alice):
    order = place_order(alice)
    fake.pay(order.out_trade_no)
    assert topup.reconcile_pending() == 0  # too young: its notification may still be on its way
    age(order, 2)
    assert topup.reconcile_pending() == 1
    assert TopUpOrder.objects.get(pk=order.pk).status == "paid"
    assert quota_of(alice) == ALICE_QUOTA + 10 * RATE and len(topup_logs(alice)) == 1
    assert topup.reconcile_pending() == 0


def test_reconcile_closes_expired_unpaid_orders_at_wechat_pay_and_here(fake, alice):
    waiting, expired = place_order(alice), place_order(alice)
    age(waiting, 5)
    age(expired, 31)
    assert topup.reconcile_pending() == 1
    assert TopUpOrder.objects.get(pk=waiting.pk).status == "pending"
    assert TopUpOrder.objects.get(pk=expired.pk).status == "closed"
    assert fake.orders[expired.out_trade_no]["closed"] and not fake.orders[waiting.out_trade_no]["closed"]
    assert quota_of(alice) == ALICE_QUOTA


def test_reconcile_closes_an_order_wechat_pay_never_received(fake, alice):
    order = place_order(alice)
    fake.orders.clear()
    age(order, 2)
    assert topup.reconcile_pending() == 1
    assert TopUpOrder.objects.get(pk=order.pk).status == "closed"


def test_reconcile_leaves_orders_alone_when_wechat_pay_fails(fake, alice):
    order = place_order(alice)
    age(order, 40)
    fake.refuse_next.append((500, "SYSTEM_ERROR"))
    assert topup.reconcile_pending() == 0
    assert TopUpOrder.objects.get(pk=order.pk).status == "pending"


def test_reconcile_does_nothing_while_payments_are_unconfigured(settings):
    unconfigure(settings)
    assert topup.reconcile_pending() == 0


def test_certificate_mode_fetches_platform_certificates_from_the_api_base(fake, alice, settings, tmp_path):
    settings.WECHATPAY_PUBLIC_KEY = settings.WECHATPAY_PUBLIC_KEY_ID = ""
    settings.WECHATPAY_CERT_DIR = str(tmp_path)
    fake.serial = fake.keys.certificate_serial
    order = place_order(alice)  # the client starts by downloading certificates, from the fake, not from WeChat
    assert [path for _, path, _ in fake.requests] == ["/v3/certificates", "/v3/pay/transactions/native"]
    assert [path.name for path in tmp_path.glob("*.pem")] == [f"{fake.keys.certificate_serial}.pem"]
    body, headers = fake.keys.notification(fake.pay(order.out_trade_no), serial=fake.keys.certificate_serial)
    assert deliver(body, headers).status_code == 200
    assert quota_of(alice) == ALICE_QUOTA + 10 * RATE


def test_staff_check_a_pending_order_with_wechat_pay_from_admin(fake, alice, root):
    order = place_order(alice)
    fake.pay(order.out_trade_no)
    admin = Client()
    admin.force_login(root)
    listing = admin.get("/admin/billing/topuporder/").content.decode()
    assert order.out_trade_no in listing and "check_with_wechat_pay" in listing
    response = admin.post(
        "/admin/billing/topuporder/", {"action": "check_with_wechat_pay", "_selected_action": [order.pk]}
    )
    assert response.status_code == 302
    assert TopUpOrder.objects.get(pk=order.pk).status == "paid" and quota_of(alice) == ALICE_QUOTA + 10 * RATE
