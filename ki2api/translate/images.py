"""Client images -> Kiro's `{"format", "source": {"bytes"}}`, checked before any upstream call.

Only inline images are taken (base64, or OpenAI's `data:` URLs). A remote URL is refused
with a 400 asking for a `data:` URL: fetching it would make ki2api a server-side request
forger's tool unless guarded, and Kiro itself takes only bytes.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from ..errors import InvalidRequest

MAX_IMAGE_BYTES = 5 * 1024 * 1024
FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
           "image/webp": "webp"}
CODE = "invalid_image"


def _sniff(raw: bytes) -> str | None:
    """The format the bytes' magic number says, or None."""
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if raw.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if raw[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "webp"
    return None


def _fail(message: str, where: str) -> InvalidRequest:
    return InvalidRequest(message, param=where, code=CODE)


def kiro_image(media_type: str, data_b64: str, where: str) -> dict[str, Any]:
    """Kiro's image entry for base64 data of `media_type`; InvalidRequest(param=where) if it cannot be sent."""
    fmt = FORMATS.get(media_type.strip().lower()) if isinstance(media_type, str) else None
    if fmt is None:
        raise _fail(f"{where}: image type {media_type!r} is not supported; send PNG, JPEG, GIF or WebP", where)
    if not isinstance(data_b64, str) or not data_b64:
        raise _fail(f"{where}: the image data is empty", where)
    compact = "".join(data_b64.split())
    if len(compact) * 3 // 4 > MAX_IMAGE_BYTES + 3:
        raise _fail(f"{where}: the image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB", where)
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(f"{where}: the image data is not valid base64", where) from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise _fail(f"{where}: the image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB", where)
    actual = _sniff(raw)
    if actual != fmt:
        found = f"{actual.upper()} data" if actual else "not a PNG, JPEG, GIF or WebP image"
        raise _fail(f"{where}: the image is declared as {media_type} but is {found}", where)
    return {"format": fmt, "source": {"bytes": base64.b64encode(raw).decode("ascii")}}


def from_data_url(url: str, where: str) -> dict[str, Any]:
    """Kiro's image entry for a `data:image/...;base64,...` URL; a clear 400 for anything else."""
    if not isinstance(url, str) or not url:
        raise _fail(f"{where}: the image URL must be a non-empty string", where)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in ("http", "https"):
        raise _fail(f"{where}: remote image URLs are not fetched by this gateway; send the image inline as a "
                    "data: URL (data:image/png;base64,...)", where)
    if scheme != "data":
        raise _fail(f"{where}: the image URL must be a data: URL (data:image/png;base64,...)", where)
    header, sep, data = url[5:].partition(",")
    params = [p.strip().lower() for p in header.split(";")]
    if not sep or "base64" not in params[1:]:
        raise _fail(f"{where}: the data: URL must be base64-encoded (data:image/png;base64,...)", where)
    return kiro_image(params[0], data, where)
