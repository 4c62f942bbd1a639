"""A fake Google OAuth token endpoint and Vertex AI on 127.0.0.1 (random port), in the real wire formats.

`POST /token` takes the JWT-bearer grant, verifies the assertion's RS256 signature with the service
account's public key and its claims (iss, sub, aud, scope, a one-hour lifetime), and answers with an
access token and `expires_in` — or Google's `invalid_grant` for anything wrong. The Vertex routes (Gemini
generateContent, Claude rawPredict, Llama's OpenAI-compatible chat completions) demand a Bearer token
it issued (else Google's 401 UNAUTHENTICATED) and answer with the Gemini, Anthropic and OpenAI fakes'
recorded shapes.
"""

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.fakes import anthropic_upstream, gemini_upstream, openai_upstream
from tests.support.fakes.recording import Behaviour, Recorded, sse, stream_lines
from tests.support.fakes.server import serve

PROJECT = "my-proj"
CLIENT_EMAIL = "gateway@my-proj.iam.gserviceaccount.com"
PRIVATE_KEY_ID = "4f1c0ffee"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_PATH = "/token"
PREFIX = "/{version}/projects/{project}/locations/{region}"
Answer = Callable[[web.Request, dict, Behaviour], Awaitable[web.StreamResponse]]
UNAUTHENTICATED = {
    "error": {
        "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        "status": "UNAUTHENTICATED",
    }
}


def new_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account_json(private_key: rsa.RSAPrivateKey, token_uri: str) -> str:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": PRIVATE_KEY_ID,
        "private_key": pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "1234567890",
        "token_uri": token_uri,
    }
    return json.dumps(info)


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def invalid_grant(description: str) -> web.Response:
    return web.json_response({"error": "invalid_grant", "error_description": description}, status=400)


@dataclass
class TokenGrant:
    header: dict
    claims: dict
    token: str


@dataclass
class FakeVertex:
    public_key: rsa.RSAPublicKey | None = None
    expires_in: int = 3599
    token_error: dict | None = None  # answer token requests with this OAuth error (status 400)
    grants: list[TokenGrant] = field(default_factory=list)
    script: list[Behaviour] = field(default_factory=list)  # status/body overrides for Vertex calls
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return self.url + TOKEN_PATH

    def reset(self, public_key: rsa.RSAPublicKey) -> None:
        self.public_key, self.expires_in, self.token_error = public_key, 3599, None
        self.grants.clear()
        self.script.clear()
        self.requests.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_post(TOKEN_PATH, self.token)
        app.router.add_post(PREFIX + "/publishers/google/models/{call}", self.guarded(gemini_answer))
        app.router.add_post(PREFIX + "/publishers/anthropic/models/{call}", self.guarded(claude_answer))
        app.router.add_post(PREFIX + "/endpoints/openapi/chat/completions", self.guarded(llama_answer))

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != GRANT_TYPE:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if self.token_error is not None:
            return web.json_response(self.token_error, status=400)
        try:
            header, claims, signature = str(form.get("assertion")).split(".")
            signed = f"{header}.{claims}".encode()
            self.public_key.verify(unb64(signature), signed, padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, InvalidSignature):
            return invalid_grant("Invalid JWT Signature.")
        grant = TokenGrant(json.loads(unb64(header)), json.loads(unb64(claims)), "")
        problem = claims_problem(grant.claims, self.token_uri)
        if problem:
            return invalid_grant(problem)
        grant.token = f"ya29.c.fake-access-token-{len(self.grants) + 1}"
        self.grants.append(grant)
        return web.json_response({"access_token": grant.token, "expires_in": self.expires_in, "token_type": "Bearer"})

    def guarded(self, answer: Answer) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A Vertex route: records the call, demands a token this fake issued, applies the script."""

        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.json()
            self.requests.append(Recorded(request.path_qs, dict(request.headers), body))
            behaviour = self.script.pop(0) if self.script else Behaviour()
            if request.headers.get("Authorization") not in {f"Bearer {grant.token}" for grant in self.grants}:
                return web.json_response(UNAUTHENTICATED, status=401)
            if behaviour.status != 200 or behaviour.body is not None:
                return web.json_response(behaviour.body or {}, status=behaviour.status)
            return await answer(request, body, behaviour)

        return handle


async def gemini_answer(request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
    gemini = gemini_upstream.Behaviour(function_call=behaviour.tool_call, cached=behaviour.cached)
    if request.match_info["call"].endswith(":streamGenerateContent"):
        if request.query.get("alt") != "sse":  # without it Google streams one JSON array
            return web.json_response({"error": {"code": 400, "message": "use alt=sse"}}, status=400)
        return await stream_lines(request, "text/event-stream", sse(gemini_upstream.stream_events(gemini)))
    return web.json_response(gemini_upstream.whole_response(gemini))


async def claude_answer(request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
    if body.get("anthropic_version") != "vertex-2023-10-16" or "model" in body:
        error = {"type": "invalid_request_error", "message": "anthropic_version: vertex-2023-10-16 required"}
        return web.json_response({"type": "error", "error": error}, status=400)
    claude = anthropic_upstream.Behaviour(tool_call=behaviour.tool_call, cache_writes=behaviour.cached)
    answered = {**body, "model": request.match_info["call"].rsplit(":", 1)[0]}
    if body.get("stream"):
        events = anthropic_upstream.stream_events(answered, claude)
        lines = [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]
        return await stream_lines(request, "text/event-stream", lines)
    return web.json_response(anthropic_upstream.message(answered, claude))


async def llama_answer(request: web.Request, body: dict, behaviour: Behaviour) -> web.StreamResponse:
    if body.get("stream"):
        chunks = openai_upstream.stream_chunks(body, openai_upstream.Behaviour(cached=behaviour.cached))
        return await stream_lines(request, "text/event-stream", [*chunks, b"data: [DONE]\n\n"])
    return web.json_response(openai_upstream.completion(body, openai_upstream.Behaviour(cached=behaviour.cached)))


def claims_problem(claims: dict, token_uri: str) -> str | None:
    """What Google would refuse in the assertion's claims, or None."""
    if claims.get("iss") != CLIENT_EMAIL or claims.get("sub") != CLIENT_EMAIL:
        return "Invalid JWT: iss and sub must be the service account's email."
    if claims.get("aud") != token_uri:
        return "Invalid JWT: aud must be the token endpoint."
    if claims.get("scope") != SCOPE:
        return "Invalid JWT: scope must be cloud-platform."
    if not isinstance(claims.get("iat"), int) or claims.get("exp") != claims["iat"] + 3600:
        return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
    return None


def start(fake: FakeVertex) -> FakeVertex:
    fake.port = serve(fake.routes)
    return fake
