"""App Attest assertion verifier (every request after enrollment).

Implements Apple's "Validating apps that connect to your server" → "Verify the assertion":

0. decode the CBOR assertion ``{signature, authenticatorData}``;
1. ``clientDataHash`` — passed in as bytes (Vigil: ``RequestBinding.client_data_hash()``);
2. ``nonce = SHA256(authenticatorData ‖ clientDataHash)``;
3. the ECDSA P-256 signature verifies over ``nonce`` with the stored public key. The signed
   message *is* the 32-byte nonce, so ``ECDSA(SHA256)`` hashes it once more;
4. ``rpIdHash`` equals ``SHA256(App ID)``;
5. the counter is strictly greater than the stored counter (the caller stores it atomically);
6. the challenge embedded in the client data is the caller's (the binding carries it).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..encoding import decode_cbor_map
from ..errors import AttestationError, Reason
from .authdata import parse_authenticator_data


@dataclass(frozen=True)
class AppleAssertionResult:
    counter: int
    flags: int

    def facts(self) -> dict[str, int]:
        return {"counter": self.counter, "flags": self.flags}


def load_public_key(pem_or_der: str | bytes) -> ec.EllipticCurvePublicKey:
    """The stored credential key (PEM or DER SubjectPublicKeyInfo), which must be EC P-256."""
    data = pem_or_der.encode() if isinstance(pem_or_der, str) else pem_or_der
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise AttestationError(Reason.MALFORMED_CERTIFICATE, f"stored public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise AttestationError(Reason.MALFORMED_CERTIFICATE, "stored public key is not EC P-256")
    return key


def _decode(assertion: bytes) -> tuple[bytes, bytes]:
    obj = decode_cbor_map(assertion, "assertion")
    signature, auth_data = obj.get("signature"), obj.get("authenticatorData")
    if not isinstance(signature, bytes) or not isinstance(auth_data, bytes):
        raise AttestationError(Reason.MALFORMED_CBOR, "assertion needs byte strings signature and authenticatorData")
    return signature, auth_data


def verify_assertion(
    assertion: bytes,
    *,
    public_key: str | bytes | ec.EllipticCurvePublicKey,
    app_id: str,
    client_data_hash: bytes,
    previous_counter: int,
) -> AppleAssertionResult:
    """Verify an App Attest assertion; return the new counter the caller must store."""
    signature, raw_auth = _decode(assertion)
    auth = parse_authenticator_data(raw_auth)
    key = public_key if isinstance(public_key, ec.EllipticCurvePublicKey) else load_public_key(public_key)
    # Steps 1-3: nonce and signature.
    nonce = hashlib.sha256(auth.raw + client_data_hash).digest()
    try:
        key.verify(signature, nonce, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as exc:
        raise AttestationError(Reason.SIGNATURE_INVALID, "signature does not verify over the nonce") from exc
    # Step 4: App ID.
    if not hmac.compare_digest(auth.rp_id_hash, hashlib.sha256(app_id.encode()).digest()):
        raise AttestationError(Reason.APP_ID_MISMATCH, f"rpIdHash is not SHA256({app_id})")
    # Step 5: counter.
    if auth.counter <= previous_counter:
        raise AttestationError(Reason.COUNTER_NOT_INCREASING, f"counter {auth.counter} <= {previous_counter}")
    return AppleAssertionResult(counter=auth.counter, flags=auth.flags)
