"""Base64url, the one spelling of bytes on the wire (RFC 4648 §5, without padding as
RFC 7515 §2 and RFC 9449 use it), plus the tolerant decoder for values that platforms
(Apple, Google, Play Console) hand out as base64 or base64url, padded or not.

Three decoders, from strict to tolerant; each caller keeps the strictness it had:

* ``b64url_decode``: the URL-safe alphabet only, no padding, no whitespace (JOSE segments,
  JWK members, DPoP proofs). Anything else is ``ValueError``.
* ``b64url_decode_padded``: what ``base64.urlsafe_b64decode`` accepts once padding is
  restored (characters outside the alphabet are discarded): headers peeked before a JWS
  library verifies the whole token.
* ``b64decode_any``: standard or URL-safe alphabet, padded or not, line breaks ignored;
  ``ValueError`` on anything else.
"""

from __future__ import annotations

import base64
import binascii
import re

_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(value: str) -> bytes:
    """Decode unpadded base64url; ``ValueError`` on any other character or a bad length."""
    if not _B64URL_RE.match(value) or len(value) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except binascii.Error as exc:  # pragma: no cover - excluded by the checks above
        raise ValueError("not base64url") from exc


def b64url_decode_padded(value: str | bytes) -> bytes:
    """``base64.urlsafe_b64decode`` after restoring the padding (``binascii.Error``, a
    ``ValueError``, on a bad length); only for values a verifier checks in full later."""
    if isinstance(value, str):
        value = value.encode("ascii")
    return base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))


def b64decode_any(text: str | bytes) -> bytes:
    """Decode base64 or base64url, with or without padding or line breaks; ``ValueError``
    (``binascii.Error`` or ``UnicodeDecodeError``) on anything else."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    compact = "".join(text.split())
    compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    return base64.b64decode(compact, validate=True)
