"""QR codes as inline SVG (pure Python, no image libraries), for WeChat Pay's `code_url`."""

import re

import qrcode
import qrcode.image.svg

SIZE_PX = 256
ROOT_SIZE = re.compile(r'^<svg width="[^"]*" height="[^"]*"')


def svg(data: str) -> str:
    """An `<svg>` element (no XML declaration), SIZE_PX square; it scales since it has a viewBox."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    markup = image.to_string(encoding="unicode")
    return ROOT_SIZE.sub(f'<svg width="{SIZE_PX}" height="{SIZE_PX}"', markup, count=1)
