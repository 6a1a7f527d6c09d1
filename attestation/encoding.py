"""Parser-boundary helpers: base64 (standard or URL-safe, padded or not; decoded by
``core.encoding``) and CBOR.

Both turn every library exception into ``AttestationError`` with a ``malformed_*`` reason,
so hostile input can never surface as a 500.
"""

from __future__ import annotations

import io
from typing import Any

import cbor2

from core import encoding

from .errors import AttestationError, Reason

MAX_CBOR_BYTES = 64 * 1024


def b64decode_any(text: str | bytes) -> bytes:
    """``core.encoding.b64decode_any`` (base64 or base64url, padding and line breaks optional),
    its ``ValueError`` turned into ``malformed_base64`` at this parser boundary."""
    try:
        return encoding.b64decode_any(text)
    except ValueError as exc:
        raise AttestationError(Reason.MALFORMED_BASE64, str(exc)) from exc


def decode_cbor_map(data: bytes, what: str) -> dict[Any, Any]:
    """Decode exactly one CBOR map with nothing after it."""
    if not isinstance(data, bytes | bytearray):
        raise AttestationError(Reason.MALFORMED_CBOR, f"{what} is not a byte string")
    if len(data) > MAX_CBOR_BYTES:
        raise AttestationError(Reason.MALFORMED_CBOR, f"{what} is too large")
    stream = io.BytesIO(bytes(data))
    try:
        item = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # cbor2 raises many types on hostile input; all are "malformed".
        raise AttestationError(Reason.MALFORMED_CBOR, f"{what}: {exc.__class__.__name__}") from exc
    if stream.tell() != len(data):
        raise AttestationError(Reason.MALFORMED_CBOR, f"{what} has trailing bytes")
    if not isinstance(item, dict):
        raise AttestationError(Reason.MALFORMED_CBOR, f"{what} is not a CBOR map")
    return item
