"""Customer pictures: PNG or JPEG, at most 300x300 pixels, validated with Pillow.

Promises: what it accepts decodes as an image of an allowed format and size. Must never:
trust a file's name or declared type, or keep a picture it refused.
"""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image, UnidentifiedImageError

from schema.errors import InvalidRequest

MAX_SIDE = 300
MAX_BYTES = 512 * 1024
FORMATS = {"PNG", "JPEG"}


def decode(picture_b64: str) -> bytes:
    """The picture's bytes, if it is an acceptable picture; InvalidRequest otherwise."""
    try:
        raw = base64.b64decode(picture_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("picture must be base64-encoded PNG or JPEG") from exc
    if len(raw) > MAX_BYTES:
        raise InvalidRequest(f"picture is over {MAX_BYTES // 1024} KiB")
    try:
        with Image.open(io.BytesIO(raw)) as image:
            fmt, (width, height) = image.format, image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidRequest("picture is not a readable PNG or JPEG") from exc
    if fmt not in FORMATS:
        raise InvalidRequest(f"picture is {fmt}; PNG or JPEG only")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InvalidRequest(
            f"picture is {width}x{height}; at most {MAX_SIDE}x{MAX_SIDE}", width=width, height=height
        )
    return raw
