"""Signing-certificate digests arrive in three spellings: raw bytes in the KeyDescription,
base64url in Play Integrity's ``certificateSha256Digest`` and base64 or hex from
operators (``create_client --android-cert-digest``, the admin). Compare them as bytes."""

from __future__ import annotations

from core.encoding import b64url_encode

from ..encoding import b64decode_any
from ..errors import AttestationError

SHA256_LEN = 32


def normalise_digest(value: str | bytes) -> bytes:
    """The 32 raw bytes of a SHA-256 digest given as bytes, hex, base64 or base64url."""
    if isinstance(value, bytes):
        if len(value) != SHA256_LEN:
            raise ValueError("a SHA-256 digest has 32 bytes")
        return value
    text = value.strip().replace(":", "")
    if len(text) == 2 * SHA256_LEN:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = b64decode_any(text)
    except AttestationError as exc:
        raise ValueError(f"not a SHA-256 digest: {value!r}") from exc
    if len(raw) != SHA256_LEN:
        raise ValueError(f"not a SHA-256 digest: {value!r}")
    return raw


def digest_b64url(raw: bytes) -> str:
    """Play Integrity's spelling: base64url without padding."""
    return b64url_encode(raw)
