"""Zhipu AI (BigModel) GLM-4 family on the v4 API: OpenAI's wire format with Zhipu's auth and limits
(spec: others.md section 1).

Decisions worth knowing:
- A key `id.secret` is signed into an HS256 JWT (header `sign_type: SIGN`, claims in milliseconds) and
  sent as `Bearer <jwt>`, the documented form. A token lives TOKEN_TTL_SECONDS and is reused until
  RENEW_BEFORE_SECONDS before it expires. Any other key (no dot, or several) is sent as a plain Bearer
  key: the v4 API accepts raw keys too, and so do proxies.
- Zhipu rejects values OpenAI accepts: top_p must lie inside (0, 1), so it is clamped to [0.01, 0.99];
  temperature must lie inside (0, 1], so 0 becomes `do_sample: false` and values above 1 become 1; `stop`
  must be an array. `stream_options` is dropped: Zhipu puts usage on the last chunk regardless.
- glm-4v image parts take an http URL or raw base64: data URLs lose their `data:...;base64,` prefix.
- finish_reason `sensitive` (the answer was blocked) becomes `content_filter`.
"""

import base64
import hashlib
import hmac
import time

import orjson

from channels_app.channel_types import both, new_api
from channels_app.routing import ChannelInfo
from relay.adaptors.base import RelayRequest, UpstreamFailure, UpstreamRequest
from relay.adaptors.openai import OpenAIAdaptor
from relay.adaptors.openai_format import (
    content_parts,
    image_url_of,
    parse_data_url,
    request_json,
    require_endpoint,
    stop_sequences,
)

SLUG = "zhipu"
API_PATH = "/api/paas/v4"
TOKEN_TTL_SECONDS = 3600
RENEW_BEFORE_SECONDS = 300
TOP_P_RANGE = (0.01, 0.99)
# Zhipu's codes for a key or account that cannot serve: 1000-1003 authentication failed (no, invalid or
# expired token), 1113 account in arrears.
DEAD_ACCOUNT_CODES = {"1000", "1001", "1002", "1003", "1113"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_token(api_id: str, secret: str, now_ms: int) -> str:
    header = {"alg": "HS256", "sign_type": "SIGN"}
    claims = {"api_key": api_id, "exp": now_ms + TOKEN_TTL_SECONDS * 1000, "timestamp": now_ms}
    signing_input = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims))}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


class Tokens:
    """Signed tokens per channel key, owned by this module. Expired entries are dropped whenever a token
    is signed, so the cache holds at most one entry per key in use."""

    cached: dict[str, tuple[str, float]] = {}

    @classmethod
    def bearer(cls, key: str) -> str:
        if key.count(".") != 1:
            return key
        now = time.time()
        found = cls.cached.get(key)
        if found is not None and found[1] - RENEW_BEFORE_SECONDS > now:
            return found[0]
        api_id, _, secret = key.partition(".")
        token = signed_token(api_id, secret, int(now * 1000))
        cls.cached = {k: v for k, v in cls.cached.items() if v[1] > now} | {key: (token, now + TOKEN_TTL_SECONDS)}
        return token


def raw_base64_images(content: list) -> list[dict]:
    """Image parts with a data URL carry only the base64 data, as Zhipu wants."""
    parts = []
    for part in content_parts(content):
        if part.get("type") == "image_url":
            url = image_url_of(part)
            data_url = parse_data_url(url)
            part = {"type": "image_url", "image_url": {"url": data_url.data if data_url else url}}
        parts.append(part)
    return parts


def sampling_fixes(body: dict) -> None:
    top_p = body.get("top_p")
    if isinstance(top_p, int | float):
        body["top_p"] = min(max(float(top_p), TOP_P_RANGE[0]), TOP_P_RANGE[1])
    temperature = body.get("temperature")
    if isinstance(temperature, int | float):
        if temperature <= 0:
            del body["temperature"]
            body["do_sample"] = False  # greedy decoding, Zhipu's way of saying temperature 0
        else:
            body["temperature"] = min(float(temperature), 1.0)
    if "stop" in body:
        stops = stop_sequences(body.pop("stop"))
        if stops:
            body["stop"] = stops


def chat_body(body: dict, model: str) -> dict:
    out = {name: value for name, value in body.items() if name != "stream_options"}
    out["model"] = model
    out["messages"] = [
        {**message, "content": raw_base64_images(message["content"])}
        if isinstance(message.get("content"), list)
        else message
        for message in body["messages"]
    ]
    sampling_fixes(out)
    return out


class ZhipuAdaptor(OpenAIAdaptor):
    slug = SLUG
    label = "Zhipu GLM-4"
    old_types = (both(16), new_api(26))
    default_base_url = "https://open.bigmodel.cn"
    finish_reasons = {"sensitive": "content_filter"}

    def build_request(self, request: RelayRequest, channel: ChannelInfo) -> UpstreamRequest:
        require_endpoint(request, SLUG, "chat", "embeddings")
        return super().build_request(request, channel)

    def url(self, request: RelayRequest, channel: ChannelInfo) -> str:
        base = self.base_url(channel).removesuffix(API_PATH)
        return f"{base}{API_PATH}/{request.path.removeprefix('/v1/')}"

    def headers(self, channel: ChannelInfo) -> dict[str, str]:
        return {"Authorization": f"Bearer {Tokens.bearer(channel.key)}"}

    def parse_error(self, status: int, content: bytes) -> UpstreamFailure:
        failure = super().parse_error(status, content)
        failure.permanent = failure.permanent or str(failure.code) in DEAD_ACCOUNT_CODES
        return failure

    def body(self, request: RelayRequest, channel: ChannelInfo) -> bytes:
        if request.endpoint != "chat":
            return super().body(request, channel)
        return request_json(chat_body(request.body, channel.upstream_model(request.model)))
