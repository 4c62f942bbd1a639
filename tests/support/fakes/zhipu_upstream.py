"""A fake Zhipu v4 API: OpenAI-shaped chat completions (usage on the last stream chunk) and embeddings,
behind a check of the JWT Zhipu wants (HS256, header sign_type SIGN, claims in milliseconds)."""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.fakes.recording import Behaviour, RecordingFake, pieces_until, sse, stream_lines

API_ID = "7a1b2c3d4e5f"
SECRET = "zhipu-signing-secret"
API_KEY = f"{API_ID}.{SECRET}"
REPLY_PIECES = ["GLM", " says", " hello"]
REPLY = "".join(REPLY_PIECES)
PROMPT_TOKENS = 15
COMPLETION_TOKENS = 3
CACHED_TOKENS = 10  # of PROMPT_TOKENS, when a behaviour reports a cache hit
EMBEDDING = [0.5, -0.25]
AUTH_FAILED = {"error": {"code": "1000", "message": "身份验证失败。"}}
IN_ARREARS = {"error": {"code": "1113", "message": "您的账户已欠费，请充值后重试。"}}  # answered with 429


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verified_claims(token: str) -> dict | None:
    """The claims of a token signed with SECRET for API_ID, or None when Zhipu would refuse it."""
    try:
        header, claims, signature = token.split(".")
        expected = hmac.new(SECRET.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
        header_fields, claim_fields = json.loads(unb64(header)), json.loads(unb64(claims))
    except ValueError:
        return None
    now_ms = time.time() * 1000
    valid = (
        hmac.compare_digest(unb64(signature), expected)
        and header_fields.get("alg") == "HS256"
        and header_fields.get("sign_type") == "SIGN"
        and claim_fields.get("api_key") == API_ID
        # Issued in milliseconds (not seconds) and not in the future; Zhipu accepts a token until its `exp`,
        # so one the adaptor reuses for an hour stays valid however long ago it was signed.
        and 10**12 < claim_fields.get("timestamp", 0) < now_ms + 60_000
        and claim_fields.get("exp", 0) > now_ms
    )
    return claim_fields if valid else None


def usage(behaviour: Behaviour) -> dict:
    found = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": 18}
    if behaviour.cached:
        found["prompt_tokens_details"] = {"cached_tokens": CACHED_TOKENS}  # GLM's context cache, in OpenAI's field
    return found


@dataclass
class FakeZhipu(RecordingFake):
    claims: list[dict] = field(default_factory=list)

    def reset(self) -> None:
        super().reset()
        self.claims.clear()

    def refuse(self, request: web.Request) -> web.Response | None:
        claims = verified_claims(request.headers.get("Authorization", "").removeprefix("Bearer "))
        if claims is None:
            return web.json_response(AUTH_FAILED, status=401)
        self.claims.append(claims)
        return None

    async def answer(self, request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
        if request.path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": 0, "embedding": EMBEDDING}]
            return web.json_response(
                {"object": "list", "model": body["model"], "data": data, "usage": usage(behaviour)}
            )
        reason = behaviour.finish_reason or "stop"
        base = {"id": "20240601-zp", "request_id": "req-1", "created": 1717000000, "model": body["model"]}
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": reason}
            return web.json_response({**base, "choices": [choice], "usage": usage(behaviour)})
        pieces, _ = pieces_until(REPLY_PIECES, behaviour)
        chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": p}}]} for p in pieces]
        chunks.append(
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}], "usage": usage(behaviour)}
        )
        return await stream_lines(request, "text/event-stream", sse(chunks) + [b"data: [DONE]\n\n"])
