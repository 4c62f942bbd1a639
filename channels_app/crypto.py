"""Channel secrets are encrypted at rest with a Fernet key derived from SESSION_SECRET."""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@cache
def _fernet(secret: str) -> Fernet:
    digest = hashlib.sha256(f"channel-secret:{secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(plain: str) -> str:
    return _fernet(settings.SECRET_KEY).encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    """The plain secret; raises ValueError when SESSION_SECRET changed since it was stored."""
    try:
        return _fernet(settings.SECRET_KEY).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("channel key cannot be decrypted: SESSION_SECRET changed since it was saved") from None


def mask(plain: str) -> str:
    if len(plain) <= 8:
        return "*" * len(plain)
    return f"{plain[:3]}...{plain[-4:]}"


def hint(token: str) -> str:
    """The masked plain secret of an encrypted `token`, for showing; "(unreadable)" when SESSION_SECRET changed."""
    try:
        return mask(decrypt(token))
    except ValueError:
        return "(unreadable)"
