"""Client logos: uploaded images checked by content, re-encoded, served from our origin.

An upload is accepted only if its bytes start with a PNG, JPEG or WebP signature (the
file name and the browser's content type are ignored) *and* Pillow decodes it as that
format, within ``IDP_CLIENT_LOGO_MAX_BYTES`` and a pixel budget (no decompression bomb).
It is then scaled to fit ``STORED_SIDE`` pixels and re-encoded as PNG: what we serve are
bytes Pillow wrote, without the upload's metadata (EXIF, GPS) or anything appended to it,
always ``image/png`` with ``nosniff``.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from django.utils.translation import gettext as _

from core.app_settings import app_settings

#: The leading bytes of the formats we accept (PNG spec §5.2, JFIF SOI marker, RIFF/WEBP).
SIGNATURES = {
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "JPEG": (b"\xff\xd8\xff",),
}
MAX_SIDE = 4096  # pixels, either side, before scaling
STORED_SIDE = 256  # pixels: sharp at 3x for the 48 px the pages show
CONTENT_TYPE = "image/png"


class LogoError(ValueError):
    """The upload is not an acceptable logo; the message says why, for the operator."""


@dataclass(frozen=True)
class Logo:
    data: bytes
    sha256: str


def sniff(data: bytes) -> str | None:
    """PNG, JPEG or WEBP from the leading bytes, or None."""
    for kind, prefixes in SIGNATURES.items():
        if data.startswith(prefixes):
            return kind
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def read_logo(data: bytes, max_bytes: int | None = None) -> Logo:
    """Check ``data`` and return the PNG we store, or raise :class:`LogoError`."""
    limit = max_bytes if max_bytes is not None else app_settings.CLIENT_LOGO_MAX_BYTES
    if len(data) > limit:
        raise LogoError(_("The logo is larger than %(kb)d KB.") % {"kb": limit // 1024})
    kind = sniff(data)
    if kind is None:
        raise LogoError(_("The logo must be a PNG, JPEG or WebP image."))
    return _reencode(data, kind)


def _reencode(data: bytes, kind: str) -> Logo:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            width, height = image.size
            if width > MAX_SIDE or height > MAX_SIDE or not width or not height:
                raise LogoError(_("The logo must be at most %(px)d pixels wide and high.") % {"px": MAX_SIDE})
            image.load()
            picture = image.convert("RGBA")
    except LogoError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise LogoError(_("The logo could not be read as an image.")) from exc
    picture.thumbnail((STORED_SIDE, STORED_SIDE))
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=True)
    png = out.getvalue()
    return Logo(png, hashlib.sha256(png).hexdigest())
