"""What text may contain where it travels: a model name into upstream URLs, a channel key into an HTTP
header, any text into the database.

Shared by the relay (the client's model, the headers it sends), the channels (the model mapping and key an
operator writes) and the management API (every text field).
"""

import re
from urllib.parse import quote

# A UTF-16 half without its other half: JSON's "\ud800" decodes to one. PostgreSQL and MariaDB cannot
# store it, and it cannot be encoded as UTF-8.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Control characters (C0, DEL, C1: CR/LF would split an HTTP request), what ends a URL path ('?', '#'),
# lone surrogates, and '.' or '..' between slashes (a path segment that climbs).
NOT_IN_MODEL_NAMES = re.compile("[\x00-\x1f\x7f-\x9f?#\ud800-\udfff]|(?:^|/)\\.{1,2}(?:/|$)")
MODEL_NAME_RULE = "must not contain control characters, '?', '#', or '.' or '..' between slashes"
UNSTORABLE = "has a character no database can store (a lone UTF-16 surrogate such as \\ud800)"


def has_lone_surrogate(value: object) -> bool:
    """Whether a string, or any string or key inside a JSON value, has a lone surrogate."""
    if isinstance(value, str):
        return LONE_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(has_lone_surrogate(key) or has_lone_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(item) for item in value)
    return False


def is_model_name(name: str) -> bool:
    """Whether `name` may be a model name (MODEL_NAME_RULE); its length is checked where it is stored."""
    return NOT_IN_MODEL_NAMES.search(name) is None


def is_header_safe(value: str) -> bool:
    """Printable ASCII only: what an HTTP header can carry (httpx refuses other characters, aiohttp line
    breaks, and an upstream may refuse a request that has a control character in a header)."""
    return value.isascii() and value.isprintable()


def model_path_segment(name: str) -> str:
    """`name` percent-encoded as one URL path segment: '/', '?', '#', '%' or ':' in it cannot steer the URL."""
    return quote(name, safe="@")
