"""Customer pictures: PNG or JPEG, at most 300x300 pixels and 512 KiB, validated with
Pillow (a dependency already: only the header is read, then `verify` checks the file).

The one check for every door a picture comes in by: the till API (agent/customers.py),
HQ's admin API and the back office's upload (hq/admin.py `set_picture`). A refusal is
`invalid_request` with `field` "picture" (the till API's documented code).
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
        raise InvalidRequest("picture must be base64-encoded PNG or JPEG",
                             field="picture") from exc
    check(raw)
    return raw


def check(raw: bytes) -> tuple[str, int, int]:
    """(format, width, height) of an acceptable picture's bytes; InvalidRequest (field
    "picture") for one too large, too big in bytes, or not a PNG or JPEG at all."""
    if not raw:
        raise InvalidRequest("picture: the file is empty; choose a PNG or JPEG",
                             field="picture")
    if len(raw) > MAX_BYTES:
        raise InvalidRequest(f"picture is over {MAX_BYTES // 1024} KiB", field="picture")
    try:
        with Image.open(io.BytesIO(raw)) as image:
            fmt, (width, height) = image.format, image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidRequest("picture is not a readable PNG or JPEG",
                             field="picture") from exc
    if fmt not in FORMATS:
        raise InvalidRequest(f"picture is {fmt}; PNG or JPEG only", field="picture")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise InvalidRequest(
            f"picture is {width}x{height}; at most {MAX_SIDE}x{MAX_SIDE}: make it smaller",
            field="picture", width=width, height=height)
    return str(fmt), width, height
