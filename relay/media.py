"""Image input tokens for chat (GET_MEDIA_TOKEN): low detail = 85; high/auto = the resize-and-tile rule.

The image's real size is read with Pillow from a data URL, or from the first bytes of a fetched URL
(bounded in size and time; public hosts only, see relay.safe_fetch). An image that cannot be read is the
client's error: 400.
"""

import asyncio
import base64
import binascii
import io
import math

import httpx
from PIL import Image, UnidentifiedImageError

from relay import safe_fetch
from relay.errors import RelayError

LOW_DETAIL_TOKENS = 85
TILE_TOKENS = 170
MINI_BASE_TOKENS = 2833  # gpt-4o-mini prices images in more tokens at a lower token price
MINI_TILE_TOKENS = 5667
MAX_IMAGE_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 10


def tile_tokens(width: int, height: int, model: str) -> int:
    """OpenAI's rule: fit in 2048x2048, shortest side to 768 (never enlarge), count 512px tiles."""
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = int(width * scale), int(height * scale)
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = int(width * scale), int(height * scale)
    tiles = math.ceil(width / 512) * math.ceil(height / 512)
    base, per_tile = (MINI_BASE_TOKENS, MINI_TILE_TOKENS) if model.startswith("gpt-4o-mini") else (85, TILE_TOKENS)
    return base + per_tile * tiles


def low_detail_tokens(model: str) -> int:
    return MINI_BASE_TOKENS if model.startswith("gpt-4o-mini") else LOW_DETAIL_TOKENS


def image_parts(messages: list) -> list[dict]:
    """The `image_url` objects of every message (a bare string URL is accepted too)."""
    found = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url")
                found.append({"url": image} if isinstance(image, str) else image if isinstance(image, dict) else {})
    return found


async def image_tokens(messages: list, model: str) -> int:
    parts = image_parts(messages)
    sizes = await asyncio.gather(*(image_size(part.get("url")) for part in parts if part.get("detail") != "low"))
    low = sum(1 for part in parts if part.get("detail") == "low")
    return low * low_detail_tokens(model) + sum(tile_tokens(w, h, model) for w, h in sizes)


async def image_size(url: object) -> tuple[int, int]:
    if not isinstance(url, str) or not url:
        raise RelayError(400, "image_url.url must be a data URL or an http(s) URL", "invalid_image", param="messages")
    data = decode_data_url(url) if url.startswith("data:") else await fetch(url)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Image.DecompressionBombError:
        message = "an image in the request is too large to read"
        raise RelayError(400, message, "invalid_image", param="messages") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise RelayError(400, "an image in the request could not be read", "invalid_image", param="messages") from None


def decode_data_url(url: str) -> bytes:
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise RelayError(400, "image data URLs must be base64-encoded", "invalid_image", param="messages")
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise RelayError(400, "an image data URL is not valid base64", "invalid_image", param="messages") from None


async def fetch(url: str) -> bytes:
    """The image at a client's URL, through relay.safe_fetch (no private addresses, every redirect checked)."""
    try:
        async with asyncio.timeout(FETCH_TIMEOUT_SECONDS), safe_fetch.get(url) as response:
            if response.status_code != 200:
                raise RelayError(400, f"image URL answered {response.status_code}", "invalid_image")
            return await read_bounded(response)
    except safe_fetch.Refused as refused:
        raise RelayError(400, str(refused), "invalid_image", param="messages") from None
    except (TimeoutError, httpx.HTTPError):
        raise RelayError(400, "an image URL in the request could not be fetched", "invalid_image") from None


async def read_bounded(response: httpx.Response) -> bytes:
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > MAX_IMAGE_BYTES:
            raise RelayError(400, "an image in the request is too large", "invalid_image")
    return data
