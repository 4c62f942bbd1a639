"""A small OpenID Connect provider on 127.0.0.1 (random port), as a company IdP would be: the discovery document,
a JWKS with an RSA key, an authorization endpoint that signs in PERSON at once and redirects back with a code,
a token endpoint answering with an id_token signed with that key (RS256, PyJWT), and the userinfo endpoint."""

import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.fakes.server import serve

CLIENT_ID = "gateway-client"
CLIENT_SECRET = "gateway-client-secret"
KEY_ID = "test-key-1"
PERSON = {
    "sub": "248289761001",
    "email": "jane@corp.example",
    "email_verified": True,
    "name": "Jane Doe",
    "preferred_username": "jane",
}


@dataclass
class FakeOIDC:
    port: int = 0
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    codes: dict[str, dict] = field(default_factory=dict)  # code -> the authorization request's nonce and client
    tokens: set[str] = field(default_factory=set)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app_settings(self, provider_id: str = "sso", name: str = "Corp SSO") -> dict:
        """SOCIALACCOUNT_PROVIDERS for the gateway, as settings.py builds it from OIDC_* variables."""
        app = {
            "provider_id": provider_id,
            "name": name,
            "client_id": CLIENT_ID,
            "secret": CLIENT_SECRET,
            "settings": {"server_url": self.issuer},
        }
        return {"openid_connect": {"APPS": [app]}}

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return web.json_response({"keys": [{**jwk, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]})

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
            return web.json_response({"error": "invalid_request"}, status=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"nonce": query.get("nonce"), "redirect_uri": query["redirect_uri"]}
        back = {"code": code, "state": query.get("state", "")}
        raise web.HTTPFound(f"{query['redirect_uri']}?{urlencode(back)}")

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = self.codes.pop(str(form.get("code")), None)
        if grant is None or form.get("client_secret", CLIENT_SECRET) != CLIENT_SECRET:
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        claims = {**PERSON, "iss": self.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": grant["nonce"]}
        id_token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KEY_ID})
        access = secrets.token_urlsafe(16)
        self.tokens.add(access)
        return web.json_response(
            {"access_token": access, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}
        )

    async def userinfo(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response(PERSON)


def start() -> FakeOIDC:
    fake = FakeOIDC()

    def routes(app: web.Application) -> None:
        app.router.add_get("/.well-known/openid-configuration", fake.discovery)
        app.router.add_get("/jwks", fake.jwks)
        app.router.add_get("/authorize", fake.authorize)
        app.router.add_post("/token", fake.token)
        app.router.add_get("/userinfo", fake.userinfo)

    fake.port = serve(routes)
    return fake
