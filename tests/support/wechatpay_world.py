"""Shared by the WeChat Pay and console tests: one fake WeChat Pay for the session, settings that point the
gateway at it, and helpers that place orders and deliver notifications to the real endpoint."""

import functools

from django.test import Client

from billing.models import TopUpOrder, User
from billing.payments import topup
from tests.support.fakes.wechatpay_upstream import FakeWeChatPay, Keys, start

NOTIFY_PATH = "/api/topup/wechat/notify"
UNCONFIGURED = {
    "WECHATPAY_MCHID": "",
    "WECHATPAY_APPID": "",
    "WECHATPAY_PRIVATE_KEY": "",
    "WECHATPAY_CERT_SERIAL_NO": "",
    "WECHATPAY_APIV3_KEY": "",
    "WECHATPAY_NOTIFY_URL": "",
    "WECHATPAY_PUBLIC_KEY": "",
    "WECHATPAY_PUBLIC_KEY_ID": "",
    "WECHATPAY_CERT_DIR": "",
}


@functools.cache
def wechatpay_server() -> FakeWeChatPay:
    return start(FakeWeChatPay(Keys()))


def configure(settings, fake: FakeWeChatPay) -> FakeWeChatPay:
    """Point the gateway (pytest-django's `settings`) at `fake`, with a clean slate on the fake."""
    fake.reset()
    for name, value in fake.settings.items():
        setattr(settings, name, value)
    return fake


def unconfigure(settings) -> None:
    for name, value in UNCONFIGURED.items():
        setattr(settings, name, value)


def place_order(user: User, yuan: int = 10) -> TopUpOrder:
    return topup.create_order(user, yuan)


def deliver(body: str, headers: dict[str, str]):
    """POST a notification to the real endpoint, as WeChat Pay does."""
    return Client().post(NOTIFY_PATH, data=body, content_type="application/json", headers=headers)
