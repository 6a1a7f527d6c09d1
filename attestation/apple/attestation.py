"""App Attest attestation (enrollment) verifier.

Implements Apple's "Validating apps that connect to your server" → "Verify the
attestation", every step in order, each failure with its own ``Reason``:

0. decode the CBOR attestation object; ``fmt`` must be ``apple-appattest``;
1. ``x5c`` = [credCert, intermediate] chains to a trusted App Attest root at ``now``;
2. append ``clientDataHash`` to ``authData``; 3. ``nonce = SHA256(authData ‖ clientDataHash)``;
4. ``nonce`` equals the OCTET STRING of credCert extension 1.2.840.113635.100.8.2;
5. ``SHA256(credCert public key point)`` equals the key identifier from the app;
6. ``rpIdHash`` equals ``SHA256(App ID)`` (``TEAMID.bundle.id``);
7. the counter is 0;
8. the aaguid is ``appattestdevelop`` (development) or ``appattest`` + 7×0x00 (production);
9. ``credentialId`` equals the key identifier.

``clientDataHash`` is taken as bytes: Vigil passes ``RequestBinding.client_data_hash()``;
Apple's 2026 sample passes the raw challenge. The receipt is kept, not verified here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from ..encoding import decode_cbor_map
from ..errors import AttestationError, Reason
from ..x509chain import load_der_certificates, verify_chain
from .authdata import AuthenticatorData, parse_authenticator_data
from .certs import ec_p256_public_key, extract_nonce, key_id_of, public_key_pem, trusted_roots

FMT = "apple-appattest"
AAGUIDS = {"development": b"appattestdevelop", "production": b"appattest" + b"\x00" * 7}


@dataclass(frozen=True)
class AppleAttestationResult:
    key_id: bytes
    public_key_pem: str
    receipt: bytes
    app_id: str
    environment: str
    counter: int
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def key_id_b64(self) -> str:
        return base64.b64encode(self.key_id).decode()


@dataclass(frozen=True)
class _Statement:
    certs: list[x509.Certificate]
    receipt: bytes
    auth_data: AuthenticatorData


def _decode(attestation: bytes) -> _Statement:
    """Step 0: CBOR ``{fmt, attStmt: {x5c, receipt}, authData}``."""
    obj = decode_cbor_map(attestation, "attestation object")
    fmt = obj.get("fmt")
    if fmt != FMT:
        raise AttestationError(Reason.UNSUPPORTED_FORMAT, f"fmt {fmt!r} is not {FMT!r}")
    stmt, auth_data = obj.get("attStmt"), obj.get("authData")
    if not isinstance(stmt, dict) or not isinstance(auth_data, bytes):
        raise AttestationError(Reason.MALFORMED_CBOR, "attStmt must be a map and authData a byte string")
    x5c, receipt = stmt.get("x5c"), stmt.get("receipt", b"")
    if not isinstance(x5c, list) or not x5c or not isinstance(receipt, bytes):
        raise AttestationError(Reason.MALFORMED_CBOR, "attStmt.x5c must be a non-empty array, receipt bytes")
    return _Statement(load_der_certificates(x5c), receipt, parse_authenticator_data(auth_data))


def _check(ok: bool, reason: str, detail: str) -> None:
    if not ok:
        raise AttestationError(reason, detail)


def verify_attestation(
    attestation: bytes,
    *,
    app_id: str,
    environment: str,
    client_data_hash: bytes,
    now: datetime,
    key_id: bytes | None = None,
    roots: Sequence[x509.Certificate] | None = None,
) -> AppleAttestationResult:
    """Verify an App Attest attestation object; ``key_id`` is the app's keyId when it sent one."""
    if environment not in AAGUIDS:
        raise ValueError(f"unknown App Attest environment {environment!r}")
    stmt = _decode(attestation)
    auth = stmt.auth_data
    # Step 1: certificate chain.
    verify_chain(stmt.certs, trusted_roots() if roots is None else roots, now)
    cred_cert = stmt.certs[0]
    # Steps 2-4: nonce.
    nonce = hashlib.sha256(auth.raw + client_data_hash).digest()
    _check(hmac.compare_digest(nonce, extract_nonce(cred_cert)), Reason.NONCE_MISMATCH, "nonce differs from credCert")
    # Step 5: key identifier.
    public_key = ec_p256_public_key(cred_cert)
    computed_key_id = key_id_of(public_key)
    if key_id is not None:
        _check(hmac.compare_digest(computed_key_id, key_id), Reason.KEY_ID_MISMATCH, "key id differs from credCert key")
    # Step 6: App ID.
    rp_id_hash = hashlib.sha256(app_id.encode()).digest()
    _check(
        hmac.compare_digest(auth.rp_id_hash, rp_id_hash), Reason.APP_ID_MISMATCH, f"rpIdHash is not SHA256({app_id})"
    )
    # Step 7: counter.
    _check(auth.counter == 0, Reason.COUNTER_NOT_ZERO, f"counter is {auth.counter}")
    # Step 8: aaguid.
    if auth.credential_id is None:
        raise AttestationError(Reason.MALFORMED_AUTHENTICATOR_DATA, "no attested credential data")
    _check(auth.aaguid == AAGUIDS[environment], Reason.AAGUID_MISMATCH, f"aaguid {auth.aaguid!r} is not {environment}")
    # Step 9: credential id.
    _check(
        hmac.compare_digest(auth.credential_id, computed_key_id),
        Reason.CREDENTIAL_ID_MISMATCH,
        "credentialId != key id",
    )
    return AppleAttestationResult(
        key_id=computed_key_id,
        public_key_pem=public_key_pem(public_key),
        receipt=stmt.receipt,
        app_id=app_id,
        environment=environment,
        counter=auth.counter,
        facts=_facts(stmt, computed_key_id, environment),
    )


def inspect_attestation(attestation: bytes) -> dict[str, Any]:
    """Decoded facts of an attestation object without verifying it (for operators)."""
    stmt = _decode(attestation)
    auth = stmt.auth_data
    key_id = key_id_of(ec_p256_public_key(stmt.certs[0]))
    facts = _facts(stmt, key_id, "unknown")
    facts.update(
        environment={v: k for k, v in AAGUIDS.items()}.get(auth.aaguid or b"", "unknown"),
        rp_id_hash=auth.rp_id_hash.hex(),
        credential_id=base64.b64encode(auth.credential_id or b"").decode(),
    )
    return facts


def _facts(stmt: _Statement, key_id: bytes, environment: str) -> dict[str, Any]:
    leaf = stmt.certs[0]
    auth = stmt.auth_data
    return {
        "fmt": FMT,
        "key_id": base64.b64encode(key_id).decode(),
        "environment": environment,
        "counter": auth.counter,
        "flags": auth.flags,
        "aaguid": (auth.aaguid or b"").decode("latin-1").rstrip("\x00"),
        "leaf_subject": leaf.subject.rfc4514_string(),
        "leaf_not_before": leaf.not_valid_before_utc.isoformat(),
        "leaf_not_after": leaf.not_valid_after_utc.isoformat(),
        "receipt_bytes": len(stmt.receipt),
        "authenticator_extensions": _jsonable(auth.extensions),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
