"""A fake WeChat Pay API v3 on 127.0.0.1 (random port), and notifications built as WeChat Pay builds them.

Self-generated RSA keys stand in for the merchant's key (which signs our requests; the fake checks it) and
WeChat Pay's platform key (which signs every answer and notification; the gateway checks it, in public-key
mode). Notifications are AES-256-GCM encrypted with the APIv3 key (WeChat Pay APIv3, "callback decryption").
"""

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.x509.oid import NameOID

from tests.support.fakes.server import serve

MCHID = "1900000001"
APPID = "wx0000000000000001"
APIV3_KEY = "0123456789abcdef0123456789abcdef"
PUBLIC_KEY_ID = "PUB_KEY_ID_TEST"
CERT_SERIAL_NO = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
NOTIFY_URL = "https://gw.example.com/api/topup/wechat/notify"
AUTHORIZATION = re.compile(r'(\w+)="([^"]*)"')


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign(key: rsa.RSAPrivateKey, message: str) -> str:
    return base64.b64encode(key.sign(message.encode(), PKCS1v15(), SHA256())).decode()


@dataclass
class Keys:
    merchant: rsa.RSAPrivateKey = field(default_factory=new_key)
    platform: rsa.RSAPrivateKey = field(default_factory=new_key)

    def settings(self, api_base: str) -> dict[str, str]:
        """The WECHATPAY_* settings of a merchant whose keys these are."""
        return {
            "WECHATPAY_MCHID": MCHID,
            "WECHATPAY_APPID": APPID,
            "WECHATPAY_PRIVATE_KEY": private_pem(self.merchant),
            "WECHATPAY_CERT_SERIAL_NO": CERT_SERIAL_NO,
            "WECHATPAY_APIV3_KEY": APIV3_KEY,
            "WECHATPAY_NOTIFY_URL": NOTIFY_URL,
            "WECHATPAY_PUBLIC_KEY": public_pem(self.platform),
            "WECHATPAY_PUBLIC_KEY_ID": PUBLIC_KEY_ID,
            "WECHATPAY_CERT_DIR": "",
            "WECHATPAY_API_BASE": api_base,
        }

    @cached_property
    def certificate(self) -> x509.Certificate:
        """The platform key's certificate, for certificate mode (the older alternative to the public key)."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.platform.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .sign(self.platform, SHA256())
        )

    @property
    def certificate_serial(self) -> str:
        return f"{self.certificate.serial_number:X}"

    def signed_headers(
        self, body: str, timestamp: int | None = None, key: rsa.RSAPrivateKey | None = None, serial: str = PUBLIC_KEY_ID
    ) -> dict:
        """The Wechatpay-* headers WeChat Pay puts on an answer or a notification with this body."""
        timestamp = int(time.time()) if timestamp is None else timestamp
        nonce = secrets.token_hex(16)
        return {
            "Wechatpay-Timestamp": str(timestamp),
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": sign(key or self.platform, f"{timestamp}\n{nonce}\n{body}\n"),
            "Wechatpay-Serial": serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }

    def encrypted(self, plain: bytes, associated_data: str, apiv3_key: str = APIV3_KEY) -> dict:
        """AEAD_AES_256_GCM with the APIv3 key and a 12-character nonce, as WeChat Pay encrypts resources."""
        nonce = secrets.token_hex(6)
        ciphertext = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plain, associated_data.encode())
        return {
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": associated_data,
            "nonce": nonce,
        }

    def notification(self, transaction: dict, apiv3_key: str = APIV3_KEY, **header_options) -> tuple[str, dict]:
        """A TRANSACTION.SUCCESS notification (body, headers) carrying `transaction`, encrypted and signed."""
        plain = json.dumps(transaction, ensure_ascii=False).encode()
        body = json.dumps(
            {
                "id": f"EV-{secrets.token_hex(8)}",
                "create_time": "2024-06-01T10:00:01+08:00",
                "resource_type": "encrypt-resource",
                "event_type": "TRANSACTION.SUCCESS",
                "summary": "支付成功",
                "resource": {"original_type": "transaction", **self.encrypted(plain, "transaction", apiv3_key)},
            },
            ensure_ascii=False,
        )
        return body, self.signed_headers(body, **header_options)


def paid_transaction(out_trade_no: str, total_fen: int, **changes: object) -> dict:
    """The decrypted `resource` of a successful Native payment (WeChat Pay APIv3 Native payment notification)."""
    return {
        "appid": APPID,
        "mchid": MCHID,
        "out_trade_no": out_trade_no,
        "transaction_id": f"42000000{secrets.randbelow(10**20):020d}",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "success_time": "2024-06-01T10:00:00+08:00",
        "payer": {"openid": "o_Test_Payer_0001"},
        "amount": {"total": total_fen, "payer_total": total_fen, "currency": "CNY", "payer_currency": "CNY"},
        **changes,
    }


@dataclass
class FakeWeChatPay:
    keys: Keys
    orders: dict[str, dict] = field(default_factory=dict)  # out_trade_no -> the order as placed, plus state
    requests: list[tuple[str, str, dict]] = field(default_factory=list)  # method, path with query, JSON body
    refuse_next: list[tuple[int, str]] = field(default_factory=list)  # (status, code) error answers to give
    serial: str = PUBLIC_KEY_ID  # what answers name as their signing key: the public key id, or a certificate
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @cached_property
    def settings(self) -> dict[str, str]:
        return self.keys.settings(self.url)

    def reset(self) -> None:
        self.orders.clear()
        self.requests.clear()
        self.refuse_next.clear()
        self.serial = PUBLIC_KEY_ID

    def pay(self, out_trade_no: str) -> dict:
        """The payer scans and pays: the order turns SUCCESS; returns the transaction."""
        order = self.orders[out_trade_no]
        order["transaction"] = paid_transaction(out_trade_no, order["amount"]["total"])
        return order["transaction"]

    def answer(self, status: int, payload: dict | None) -> web.Response:
        text = json.dumps(payload) if payload is not None else ""
        headers = self.keys.signed_headers(text, serial=self.serial)
        if payload is None:
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, text=text, content_type="application/json", headers=headers)

    def merchant_signed(self, request: web.Request, raw: str) -> bool:
        fields = dict(AUTHORIZATION.findall(request.headers.get("Authorization", "")))
        message = f"{request.method}\n{request.path_qs}\n{fields.get('timestamp')}\n{fields.get('nonce_str')}\n{raw}\n"
        try:
            self.keys.merchant.public_key().verify(
                base64.b64decode(fields.get("signature", "")), message.encode(), PKCS1v15(), SHA256()
            )
        except (InvalidSignature, ValueError):
            return False
        return fields.get("mchid") == MCHID and fields.get("serial_no") == CERT_SERIAL_NO

    async def handle(self, request: web.Request) -> web.Response:
        raw = (await request.read()).decode()
        body = json.loads(raw) if raw else {}
        self.requests.append((request.method, request.path_qs, body))
        if not self.merchant_signed(request, raw):
            return self.answer(401, {"code": "SIGN_ERROR", "message": "signature mismatch"})
        if self.refuse_next:
            status, code = self.refuse_next.pop(0)
            return self.answer(status, {"code": code, "message": f"refused: {code}"})
        out_trade_no = request.match_info.get("out_trade_no", "")
        if request.path == "/v3/certificates":
            return self.answer(200, {"data": [self.certificate_entry()]})
        if request.path == "/v3/pay/transactions/native":
            self.orders[body["out_trade_no"]] = {**body, "closed": False, "transaction": None}
            return self.answer(200, {"code_url": f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(8)}"})
        order = self.orders.get(out_trade_no)
        if order is None:
            return self.answer(404, {"code": "ORDER_NOT_EXIST", "message": "order does not exist"})
        if request.path.endswith("/close"):
            if order["transaction"]:
                return self.answer(400, {"code": "ORDERPAID", "message": "order paid"})
            order["closed"] = True
            return self.answer(204, None)
        return self.answer(200, self.query_answer(order))

    def certificate_entry(self) -> dict:
        certificate = self.keys.certificate
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        return {
            "serial_no": self.keys.certificate_serial,
            "effective_time": certificate.not_valid_before_utc.isoformat(),
            "expire_time": certificate.not_valid_after_utc.isoformat(),
            "encrypt_certificate": self.keys.encrypted(pem, "certificate"),
        }

    def query_answer(self, order: dict) -> dict:
        if order["transaction"]:
            return order["transaction"]
        state = "CLOSED" if order["closed"] else "NOTPAY"
        return {
            "appid": APPID,
            "mchid": MCHID,
            "out_trade_no": order["out_trade_no"],
            "trade_state": state,
            "trade_state_desc": state,
            "amount": {"total": order["amount"]["total"], "currency": "CNY"},
        }


def start(fake: FakeWeChatPay) -> FakeWeChatPay:
    def add_routes(app: web.Application) -> None:
        app.router.add_get("/v3/certificates", fake.handle)
        app.router.add_post("/v3/pay/transactions/native", fake.handle)
        app.router.add_get("/v3/pay/transactions/out-trade-no/{out_trade_no}", fake.handle)
        app.router.add_post("/v3/pay/transactions/out-trade-no/{out_trade_no}/close", fake.handle)

    fake.port = serve(add_routes)
    return fake
