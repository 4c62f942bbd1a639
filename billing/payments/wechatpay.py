"""WeChat Pay API v3 (Native) through the wechatpayv3 SDK: client, order calls, notification checks.

Configured only by the WECHATPAY_* settings (environment). Nothing here moves money: billing.payments.topup
decides what a verified answer means. Every call is synchronous (the SDK uses `requests`); callers run
it outside database transactions.
"""

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.utils.translation import gettext as _
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.core import Core

logger = logging.getLogger(__name__)

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
REPLAY_WINDOW_SECONDS = 300
TIMEOUT = (5, 15)  # connect, read: an order is created while the user waits for the QR code
CHINA_TIME = timezone(timedelta(hours=8))
REQUIRED = (
    "WECHATPAY_MCHID",
    "WECHATPAY_APPID",
    "WECHATPAY_PRIVATE_KEY",
    "WECHATPAY_CERT_SERIAL_NO",
    "WECHATPAY_APIV3_KEY",
    "WECHATPAY_NOTIFY_URL",
)
NOTIFY_HEADERS = (
    "Wechatpay-Timestamp",
    "Wechatpay-Nonce",
    "Wechatpay-Signature",
    "Wechatpay-Serial",
    "Wechatpay-Signature-Type",
)


class PaymentsDisabled(Exception):
    """WeChat Pay is not configured (or only partly: the message names what is missing)."""


class WeChatPayError(Exception):
    """A call to WeChat Pay failed: its error answer, a network failure, or a badly signed answer."""

    def __init__(self, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class NotificationRejected(Exception):
    """A notification that did not prove it comes from WeChat Pay (the reason is for our logs only)."""


@dataclass(frozen=True)
class Config:
    mchid: str
    appid: str
    private_key: str
    cert_serial_no: str
    apiv3_key: str
    notify_url: str
    public_key: str
    public_key_id: str
    cert_dir: str
    api_base: str


def load_config() -> Config:
    """The merchant configuration; PaymentsDisabled when it is absent or incomplete."""
    values = {name: getattr(settings, name, "") for name in REQUIRED}
    public_key, public_key_id = settings.WECHATPAY_PUBLIC_KEY, settings.WECHATPAY_PUBLIC_KEY_ID
    cert_dir = settings.WECHATPAY_CERT_DIR
    if not any(values.values()):
        raise PaymentsDisabled(_("payments are not enabled"))
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise PaymentsDisabled(f"WeChat Pay is misconfigured: {', '.join(missing)} not set")
    if bool(public_key) != bool(public_key_id):
        raise PaymentsDisabled("WeChat Pay is misconfigured: set WECHATPAY_PUBLIC_KEY and _PUBLIC_KEY_ID together")
    if not public_key and not cert_dir:
        raise PaymentsDisabled("WeChat Pay is misconfigured: set WECHATPAY_PUBLIC_KEY(+_ID) or WECHATPAY_CERT_DIR")
    if len(values["WECHATPAY_APIV3_KEY"].encode()) != 32:
        raise PaymentsDisabled("WeChat Pay is misconfigured: WECHATPAY_APIV3_KEY must be 32 characters")
    return Config(
        mchid=values["WECHATPAY_MCHID"],
        appid=values["WECHATPAY_APPID"],
        private_key=values["WECHATPAY_PRIVATE_KEY"],
        cert_serial_no=values["WECHATPAY_CERT_SERIAL_NO"],
        apiv3_key=values["WECHATPAY_APIV3_KEY"],
        notify_url=values["WECHATPAY_NOTIFY_URL"],
        public_key=public_key,
        public_key_id=public_key_id,
        cert_dir=cert_dir,
        api_base=settings.WECHATPAY_API_BASE,
    )


def enabled() -> bool:
    try:
        load_config()
    except PaymentsDisabled:
        return False
    return True


class _Core(Core):
    """The SDK hardcodes the official host and, in certificate mode, already downloads certificates in
    its constructor; this sends every call, that first one included, to WECHATPAY_API_BASE."""

    def __init__(self, api_base: str, **kwargs: object) -> None:
        self._api_base = api_base
        super().__init__(**kwargs)
        self._gate_way = api_base

    def _init_certificates(self) -> None:
        self._gate_way = self._api_base
        super()._init_certificates()


class _Client(WeChatPay):
    def __init__(self, config: Config) -> None:
        # The attributes WeChatPay.__init__ sets (wechatpayv3 2.0.4, pinned), with our Core in place of its own.
        self._type = WeChatPayType.NATIVE
        self._mchid = config.mchid
        self._appid = config.appid
        self._notify_url = config.notify_url
        self._partner_mode = False
        self._core = _Core(
            config.api_base,
            mchid=config.mchid,
            cert_serial_no=config.cert_serial_no,
            private_key=config.private_key,
            apiv3_key=config.apiv3_key,
            cert_dir=config.cert_dir or None,
            logger=logging.getLogger(f"{__name__}.sdk"),  # requests and answers, at DEBUG only
            timeout=TIMEOUT,
            public_key=config.public_key or None,
            public_key_id=config.public_key_id or None,
        )


# Cached per configuration: building a client parses the RSA keys and, in certificate mode, may download
# certificates. The key is the whole Config, so a changed configuration (tests) gets a new client.
@functools.lru_cache(maxsize=4)
def _client_for(config: Config) -> WeChatPay:
    return _Client(config)


def client() -> WeChatPay:
    config = load_config()
    try:
        return _client_for(config)
    except Exception as failure:  # bad PEM, or no platform certificate could be had
        raise WeChatPayError(f"WeChat Pay client could not start: {failure}") from failure


def _call(operation: str, call: Callable[..., tuple[int, str | bytes]], **kwargs: object) -> tuple[int, str | bytes]:
    try:
        return call(**kwargs)
    except Exception as failure:  # requests' network errors, or the SDK refusing an unsigned answer
        logger.warning("WeChat Pay %s failed: %s", operation, failure)
        raise WeChatPayError(f"WeChat Pay is unreachable or answered unsigned ({type(failure).__name__})") from None


def _error(operation: str, status: int, message: str | bytes) -> WeChatPayError:
    try:
        answer = json.loads(message)
    except (TypeError, ValueError):
        answer = {}
    code, text = str(answer.get("code", "")), str(answer.get("message", ""))[:200]
    logger.warning("WeChat Pay %s answered %s %s %s", operation, status, code, text)
    return WeChatPayError(f"WeChat Pay refused the {operation}: {code or status} {text}".strip(), status, code)


def create_native_order(out_trade_no: str, amount_fen: int, description: str, expires_at: datetime, attach: str) -> str:
    """Place a Native order; returns its `code_url` (the QR code's content)."""
    status, message = _call(
        "order",
        client().pay,
        description=description,
        out_trade_no=out_trade_no,
        amount={"total": amount_fen, "currency": "CNY"},
        time_expire=expires_at.astimezone(CHINA_TIME).isoformat(timespec="seconds"),
        attach=attach,
        pay_type=WeChatPayType.NATIVE,
    )
    if status != 200:
        raise _error("order", status, message)
    return json.loads(message)["code_url"]


def query_order(out_trade_no: str) -> dict | None:
    """The transaction as WeChat Pay knows it (signature verified), or None if it has no such order."""
    status, message = _call("query", client().query, out_trade_no=out_trade_no)
    if status == 404:
        return None
    if status != 200:
        raise _error("query", status, message)
    return json.loads(message)


def close_order(out_trade_no: str) -> None:
    status, message = _call("close", client().close, out_trade_no=out_trade_no)
    if status != 204:
        raise _error("close", status, message)


def verify_notification(headers: Mapping[str, str], body: bytes, now: float | None = None) -> dict:
    """The notification, its `resource` decrypted, if it is signed by WeChat Pay and recent.

    NotificationRejected otherwise. The SDK checks the signature and decrypts; the checks before it are
    ours: it has no replay window, and for a serial it does not know it would download certificates,
    which a forger must not be able to make us do at will in public-key mode.
    """
    try:
        config = load_config()
    except PaymentsDisabled as disabled:
        raise NotificationRejected(str(disabled)) from None
    picked = {name: headers.get(name, "") for name in NOTIFY_HEADERS}
    if picked["Wechatpay-Signature-Type"] != SIGNATURE_TYPE:
        raise NotificationRejected(f"unsupported signature type {picked['Wechatpay-Signature-Type']!r}")
    if config.public_key_id and picked["Wechatpay-Serial"] != config.public_key_id:
        raise NotificationRejected(f"unknown Wechatpay-Serial {picked['Wechatpay-Serial'][:64]!r}")
    try:
        sent_at = int(picked["Wechatpay-Timestamp"])
    except ValueError:
        raise NotificationRejected("no valid Wechatpay-Timestamp") from None
    if abs((time.time() if now is None else now) - sent_at) > REPLAY_WINDOW_SECONDS:
        raise NotificationRejected(f"Wechatpay-Timestamp {sent_at} is outside the {REPLAY_WINDOW_SECONDS} s window")
    try:
        verified = client().callback(picked, body)
    except Exception:  # malformed body or serial, an unsupported algorithm: all mean "not proven"
        verified = None
    if not verified or not isinstance(verified.get("resource"), dict):
        raise NotificationRejected("signature verification or decryption failed")
    return verified
