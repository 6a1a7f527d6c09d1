"""Defensive parser of WebAuthn-style authenticator data as App Attest produces it.

Layout (WebAuthn §6.1, used by App Attest): ``rpIdHash`` (32) ‖ ``flags`` (1) ‖
``signCount`` (4, big-endian) ‖ [attested credential data: ``aaguid`` (16) ‖
``credentialIdLength`` (2) ‖ ``credentialId`` ‖ COSE key (CBOR)] ‖ [extensions (CBOR map)].

Real-data quirks handled here:
- assertions set the AT flag (0x40) although they carry no attested credential data
  (37 bytes in total), so AT with nothing after the counter parses as "no credential";
- Apple's 2026 attestations append a CBOR map (``apple_bundle_version_01``...) after the
  COSE key *without* the ED flag (0x80); it is accepted and exposed as ``extensions``
  as long as it is exactly one well-formed CBOR map.

Every failure is ``AttestationError(malformed_authenticator_data)``; no library exception escapes.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import cbor2

from ..errors import AttestationError, Reason

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_AT = 0x40
FLAG_ED = 0x80
_HEADER = 37
_AAGUID_LEN = 16
MAX_LENGTH = 16 * 1024


@dataclass(frozen=True)
class AuthenticatorData:
    raw: bytes
    rp_id_hash: bytes
    flags: int
    counter: int
    aaguid: bytes | None = None
    credential_id: bytes | None = None
    credential_public_key: dict[Any, Any] | None = None
    extensions: dict[Any, Any] | None = None

    @property
    def has_attested_credential(self) -> bool:
        return self.credential_id is not None


def _fail(detail: str) -> AttestationError:
    return AttestationError(Reason.MALFORMED_AUTHENTICATOR_DATA, detail)


def _decode_one(data: bytes, start: int) -> tuple[Any, int]:
    """Decode exactly one CBOR item at ``data[start:]``; return it and the end offset."""
    stream = io.BytesIO(data[start:])
    try:
        item = cbor2.CBORDecoder(stream).decode()
    except Exception as exc:  # cbor2 raises many types on hostile input; all are "malformed".
        raise _fail(f"bad CBOR at offset {start}: {exc.__class__.__name__}") from exc
    return item, start + stream.tell()


def _parse_cose_key(data: bytes, offset: int) -> tuple[dict[Any, Any], int]:
    key, end = _decode_one(data, offset)
    if not isinstance(key, dict):
        raise _fail("credential public key is not a CBOR map")
    return key, end


def _parse_extensions(data: bytes, offset: int, flagged: bool) -> dict[Any, Any] | None:
    if offset == len(data):
        if flagged:
            raise _fail("ED flag set but no extension data")
        return None
    extensions, end = _decode_one(data, offset)
    if not isinstance(extensions, dict):
        raise _fail("extension data is not a CBOR map")
    if end != len(data):
        raise _fail(f"{len(data) - end} unexpected trailing bytes")
    return extensions


def parse_authenticator_data(data: bytes) -> AuthenticatorData:
    """Parse ``data``; the caller decides which parts must be present."""
    if not isinstance(data, bytes | bytearray):
        raise _fail("authenticator data is not a byte string")
    data = bytes(data)
    if len(data) < _HEADER:
        raise _fail(f"{len(data)} bytes, need at least {_HEADER}")
    if len(data) > MAX_LENGTH:
        raise _fail("authenticator data too long")
    rp_id_hash, flags, counter = data[:32], data[32], struct.unpack(">I", data[33:37])[0]
    if not flags & FLAG_AT or len(data) == _HEADER:
        extensions = _parse_extensions(data, _HEADER, bool(flags & FLAG_ED))
        return AuthenticatorData(data, rp_id_hash, flags, counter, extensions=extensions)
    offset = _HEADER
    if len(data) < offset + _AAGUID_LEN + 2:
        raise _fail("truncated attested credential data")
    aaguid = data[offset : offset + _AAGUID_LEN]
    (cred_len,) = struct.unpack(">H", data[offset + _AAGUID_LEN : offset + _AAGUID_LEN + 2])
    offset += _AAGUID_LEN + 2
    if len(data) < offset + cred_len:
        raise _fail("credential id longer than the data")
    credential_id = data[offset : offset + cred_len]
    cose_key, offset = _parse_cose_key(data, offset + cred_len)
    extensions = _parse_extensions(data, offset, bool(flags & FLAG_ED))
    return AuthenticatorData(data, rp_id_hash, flags, counter, aaguid, credential_id, cose_key, extensions)
