"""Image input tokens for chat (GET_MEDIA_TOKEN): low detail = 85; high/auto = the resize-and-tile rule.

The image's real size is read with Pillow from the header of a data URL, or of a fetched URL (bounded in
size; public hosts only, see relay.safe_fetch). Sizing costs work, so it is bounded: at most
IMAGE_MAX_COUNT images a request (counted before any is read; relay.service also checks the request's
quota before), IMAGE_MAX_PIXELS in all; data URLs are read on a worker thread, URLs fetched
IMAGE_FETCH_CONCURRENCY at a time, all of them within IMAGE_FETCH_TIMEOUT. An image that cannot be read
is the client's error: 400.
"""

import asyncio
import base64
import binascii
import io
import math
from dataclasses import dataclass

import httpx
from django.conf import settings
from PIL import Image, UnidentifiedImageError

from relay import safe_fetch
from relay.errors import RelayError

LOW_DETAIL_TOKENS = 85
TILE_TOKENS = 170
MINI_BASE_TOKENS = 2833  # gpt-4o-mini prices images in more tokens at a lower token price
MINI_TILE_TOKENS = 5667
MAX_IMAGE_BYTES = 20 * 1024 * 1024
# Base64 characters decoded first (a multiple of 4): 192 KiB holds the header of nearly every image, even
# a JPEG behind a large EXIF block. Only when it does not is the whole data URL decoded.
HEADER_CHARS = 256 * 1024

Size = tuple[int, int]


@dataclass(frozen=True)
class ImagePart:
    url: str
    low: bool  # detail "low": a flat price, the image is never read


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


def invalid(message: str) -> RelayError:
    return RelayError(400, message, "invalid_image", param="messages")


def too_many(message: str) -> RelayError:
    return RelayError(400, message, "too_many_images", param="messages")


def images_in(messages: list) -> list[ImagePart]:
    """The `image_url` parts of every message (a bare string URL is accepted too); 400 past IMAGE_MAX_COUNT
    (the scan stops there) or for a part to size that has no URL."""
    found = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                found.append(image_part(part.get("image_url")))
                if len(found) > settings.IMAGE_MAX_COUNT:
                    raise too_many(f"a request may carry at most {settings.IMAGE_MAX_COUNT} images")
    return found


def image_part(image: object) -> ImagePart:
    fields = {"url": image} if isinstance(image, str) else image if isinstance(image, dict) else {}
    url, low = fields.get("url"), fields.get("detail") == "low"
    if not low and (not isinstance(url, str) or not url):
        raise invalid("image_url.url must be a data URL or an http(s) URL")
    return ImagePart(url if isinstance(url, str) else "", low)


async def image_tokens(images: list[ImagePart], model: str) -> int:
    urls = [image.url for image in images if not image.low]
    data_urls = [url for url in urls if url.startswith("data:")]
    sizes = await asyncio.to_thread(data_url_sizes, data_urls) if data_urls else []
    sizes += await fetched_sizes([url for url in urls if not url.startswith("data:")], pixels(sizes))
    low = len(images) - len(urls)
    return low * low_detail_tokens(model) + sum(tile_tokens(width, height, model) for width, height in sizes)


def pixels(sizes: list[Size]) -> int:
    return sum(width * height for width, height in sizes)


def count_pixels(total: int, size: Size) -> int:
    """`total` plus the image's pixels; 400 past IMAGE_MAX_PIXELS."""
    total += size[0] * size[1]
    if total > settings.IMAGE_MAX_PIXELS:
        raise too_many(f"the images of a request may have at most {settings.IMAGE_MAX_PIXELS:,} pixels in all")
    return total


def data_url_sizes(urls: list[str]) -> list[Size]:
    """Run on a worker thread: decoding megabytes of base64 would hold up the event loop."""
    sizes, total = [], 0
    for url in urls:
        sizes.append(data_url_size(url))
        total = count_pixels(total, sizes[-1])
    return sizes


def data_url_size(url: str) -> Size:
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise invalid("image data URLs must be base64-encoded")
    if len(payload) > HEADER_CHARS:
        try:
            return read_size(base64.b64decode(payload[:HEADER_CHARS]))
        except (binascii.Error, RelayError):
            pass  # the header goes on further, or the text has characters out of step: decode all of it
    return read_size(decode_base64(payload))


def decode_base64(payload: str) -> bytes:
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise invalid("an image data URL is not valid base64") from None


def read_size(data: bytes) -> Size:
    """Width and height from the image's header; Pillow reads no pixels for it."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Image.DecompressionBombError:
        raise invalid("an image in the request is too large to read") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise invalid("an image in the request could not be read") from None


async def fetched_sizes(urls: list[str], pixels_so_far: int) -> list[Size]:
    """The sizes of the images at `urls`: IMAGE_FETCH_CONCURRENCY fetches at a time, all of them within
    IMAGE_FETCH_TIMEOUT; the first failure stops the others."""
    if not urls:
        return []
    gate = asyncio.Semaphore(settings.IMAGE_FETCH_CONCURRENCY)
    total = pixels_so_far

    async def sized(url: str) -> Size:
        nonlocal total
        async with gate:
            size = read_size(await fetch(url))
        total = count_pixels(total, size)
        return size

    try:
        async with asyncio.timeout(settings.IMAGE_FETCH_TIMEOUT), asyncio.TaskGroup() as group:
            fetches = [group.create_task(sized(url)) for url in urls]
    except TimeoutError:
        timeout = settings.IMAGE_FETCH_TIMEOUT
        raise invalid(f"the image URLs in the request could not be fetched within {timeout:g} s") from None
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [done.result() for done in fetches]


async def fetch(url: str) -> bytes:
    """The image at a client's URL, through relay.safe_fetch (no private addresses, every redirect checked)."""
    try:
        async with safe_fetch.get(url) as response:
            if response.status_code != 200:
                raise invalid(f"image URL answered {response.status_code}")
            return await read_bounded(response)
    except safe_fetch.Refused as refused:
        raise invalid(str(refused)) from None
    except httpx.HTTPError:
        raise invalid("an image URL in the request could not be fetched") from None


async def read_bounded(response: httpx.Response) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > MAX_IMAGE_BYTES:
            raise invalid("an image in the request is too large")
    return bytes(data)
