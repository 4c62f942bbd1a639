"""Google service accounts: the JSON key, the signed JWT assertion and the OAuth access token it buys
(spec: gemini.md section 7).

Decisions worth knowing:
- The assertion is signed here with `cryptography` (RS256, lives ASSERTION_LIFETIME_SECONDS) and posted
  to the account's own `token_uri`, which is also its `aud`: Google requires the two to match.
- Access tokens are cached per service account (the hash of its JSON) and replaced
  REFRESH_MARGIN_SECONDS before Google says they expire; a token already handed to a request stays
  usable until it really expires.
- Nothing here puts the JSON, the private key, the assertion or an access token into a message: token
  endpoint failures quote only the OAuth error code and Google's description.
"""

import asyncio
import base64
import hashlib
import time
import weakref
from dataclasses import dataclass, field
from functools import lru_cache

import httpx
import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from relay import upstream
from relay.adaptors.base import UpstreamFailed, UpstreamFailure
from relay.adaptors.openai_format import json_or_none

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME_SECONDS = 3600
REFRESH_MARGIN_SECONDS = 300
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600  # when the token endpoint leaves out expires_in
TOKEN_TIMEOUT_SECONDS = 30.0
REQUIRED_FIELDS = ("project_id", "private_key_id", "private_key", "client_email", "token_uri")
# OAuth errors that mean the account itself cannot get tokens (deleted, key revoked, wrong key):
# reported as 401 so the channel's auto-disable rule applies.
DEAD_CREDENTIAL_ERRORS = {"invalid_grant", "invalid_client", "unauthorized_client", "access_denied"}


class InvalidServiceAccount(ValueError):
    """The key is not a usable service-account JSON. The message names the problem, never the content."""


@dataclass(frozen=True)
class ServiceAccount:
    project_id: str
    client_email: str
    private_key_id: str
    token_uri: str
    cache_key: str  # sha256 of the whole JSON: a rotated key gets tokens of its own
    signer: rsa.RSAPrivateKey = field(repr=False)


@lru_cache(maxsize=256)
def service_account(key: str) -> ServiceAccount:
    """Parse and check a service-account JSON once per distinct key text (loading the RSA key is slow)."""
    info = json_or_none(key.encode())
    if not isinstance(info, dict):
        raise InvalidServiceAccount("must be a Google service-account JSON object (the key file from IAM)")
    if info.get("type") != "service_account":
        raise InvalidServiceAccount('must be a service-account key: its "type" must be "service_account"')
    missing = [name for name in REQUIRED_FIELDS if not isinstance(info.get(name), str) or not info[name].strip()]
    if missing:
        raise InvalidServiceAccount(f"the service-account JSON lacks {', '.join(missing)}")
    if not info["token_uri"].startswith(("https://", "http://")):
        raise InvalidServiceAccount("the service-account JSON's token_uri must be an http(s) URL")
    return ServiceAccount(
        project_id=info["project_id"],
        client_email=info["client_email"],
        private_key_id=info["private_key_id"],
        token_uri=info["token_uri"],
        cache_key=hashlib.sha256(key.encode()).hexdigest(),
        signer=rsa_key(info["private_key"]),
    )


def rsa_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        loaded = serialization.load_pem_private_key(pem.replace("\\n", "\n").encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        loaded = None  # the library's message may quote the key; ours does not
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise InvalidServiceAccount("the service-account JSON's private_key is not an unencrypted PEM RSA key")
    return loaded


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion(account: ServiceAccount, issued_at: int) -> str:
    """The RS256 JWT that the token endpoint exchanges for an access token (RFC 7523)."""
    header = {"alg": "RS256", "typ": "JWT", "kid": account.private_key_id}
    claims = {
        "iss": account.client_email,
        "sub": account.client_email,
        "aud": account.token_uri,
        "scope": SCOPE,
        "iat": issued_at,
        "exp": issued_at + ASSERTION_LIFETIME_SECONDS,
    }
    signing_input = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims))}"
    signature = account.signer.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


class Tokens:
    """Access tokens of this process by service account, owned by this class; `clear` empties it.

    A refresh holds the account's lock, so a burst of requests on a cold or expiring token makes one
    token request: the others wait, then find the new token. An asyncio.Lock belongs to one event loop
    and channel tests from synchronous code run loops of their own, hence one set of locks per loop.
    """

    cached: dict[str, tuple[str, float]] = {}  # cache_key -> (access token, expiry as a Unix time)
    locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()

    @classmethod
    def usable(cls, account: ServiceAccount, margin: float = 0.0) -> str | None:
        """The cached token if it stays valid for `margin` more seconds."""
        found = cls.cached.get(account.cache_key)
        return found[0] if found is not None and found[1] - margin > time.time() else None

    @classmethod
    async def ensure(cls, account: ServiceAccount) -> None:
        """Make sure a token good for at least REFRESH_MARGIN_SECONDS is cached. Raises UpstreamFailed."""
        if cls.usable(account, REFRESH_MARGIN_SECONDS):
            return
        loop_locks = cls.locks.setdefault(asyncio.get_running_loop(), {})
        async with loop_locks.setdefault(account.cache_key, asyncio.Lock()):
            if cls.usable(account, REFRESH_MARGIN_SECONDS):
                return  # refreshed by the request we waited for
            token, expires_at = await exchange(account)
            now = time.time()
            kept = {key: entry for key, entry in cls.cached.items() if entry[1] > now}
            cls.cached = kept | {account.cache_key: (token, expires_at)}

    @classmethod
    def clear(cls) -> None:
        cls.cached = {}


async def exchange(account: ServiceAccount) -> tuple[str, float]:
    """(access token, expiry as a Unix time) for a fresh assertion."""
    issued_at = int(time.time())
    form = {"grant_type": GRANT_TYPE, "assertion": assertion(account, issued_at)}
    try:
        response = await upstream.client().post(account.token_uri, data=form, timeout=TOKEN_TIMEOUT_SECONDS)
    except httpx.TimeoutException:
        raise UpstreamFailed(
            UpstreamFailure(504, "the service account's token endpoint did not answer in time", "upstream_timeout")
        ) from None
    except httpx.HTTPError as exc:
        message = f"the service account's token endpoint could not be reached: {type(exc).__name__}"
        raise UpstreamFailed(UpstreamFailure(502, message, "upstream_error")) from None
    body = json_or_none(response.content)
    body = body if isinstance(body, dict) else {}
    if response.status_code >= 400:
        raise UpstreamFailed(token_failure(response.status_code, body))
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise UpstreamFailed(UpstreamFailure(502, "the token endpoint answered without an access_token"))
    lifetime = body.get("expires_in")
    lifetime = lifetime if isinstance(lifetime, int) and lifetime > 0 else DEFAULT_TOKEN_LIFETIME_SECONDS
    return token, issued_at + lifetime


def token_failure(status: int, body: dict) -> UpstreamFailure:
    """An OAuth error (`{"error": "invalid_grant", "error_description": ...}`) in OpenAI's terms."""
    error = body.get("error") if isinstance(body.get("error"), str) else f"status {status}"
    description = body.get("error_description") if isinstance(body.get("error_description"), str) else ""
    message = f"the service account's token request was refused: {error}"
    if description:
        message += f" ({description[:300]})"
    if error in DEAD_CREDENTIAL_ERRORS or status == 401:
        return UpstreamFailure(401, message, "authentication_error", error)
    # Anything else is the token endpoint's trouble, not the client's request: retryable on another channel.
    return UpstreamFailure(502, message, "upstream_error", error)
