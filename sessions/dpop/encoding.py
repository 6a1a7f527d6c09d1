"""Strict base64url (RFC 7515 §2: URL-safe alphabet, no padding, no whitespace)."""

from __future__ import annotations

import base64
import binascii
import re

_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(value: str) -> bytes:
    """Decode unpadded base64url; ``ValueError`` on any other character or a bad length."""
    if not _B64URL_RE.match(value) or len(value) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except binascii.Error as exc:  # pragma: no cover - excluded by the checks above
        raise ValueError("not base64url") from exc
