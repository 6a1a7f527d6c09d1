"""The proof key: RFC 7638 thumbprints and the ``jwk`` header checks of RFC 9449 §4.3.

``thumbprint()`` is the ``jkt`` of RFC 9449 §6.1 (``cnf.jkt`` in access tokens) and the
``dpop_jkt`` of the attestation binding. ``public_key_for()`` turns a proof's ``jwk``
header into a joserfc key, refusing private material and keys that do not fit ``alg``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from core.encoding import b64url_decode, b64url_encode

from .errors import DPoPError, Reason

#: RFC 7638 §3.2: the required members hashed for each key type.
THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
    "oct": ("k", "kty"),
}

#: Members that only a private (or symmetric) JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

#: ``alg`` -> (``kty``, accepted ``crv`` values or None for RSA).
_ALG_KEYS: dict[str, tuple[str, frozenset[str] | None]] = {
    "ES256": ("EC", frozenset({"P-256"})),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
_KEY_CLASSES: dict[str, type[ECKey] | type[RSAKey] | type[OKPKey]] = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192  # bounds the cost of verifying an attacker's key


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 SHA-256 JWK thumbprint, base64url encoded (RFC 9449 §6.1 ``jkt``).

    Only the required members of the key type take part (RFC 7638 §3.2), in lexicographic
    order, as compact JSON. Raises ``ValueError`` for an unknown ``kty`` or a missing member.
    """
    members = THUMBPRINT_MEMBERS.get(jwk.get("kty"))  # type: ignore[arg-type]
    if members is None:
        raise ValueError("unsupported or missing kty")
    if not all(isinstance(jwk.get(name), str) for name in members):
        raise ValueError("a required JWK member is missing or not a string")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def has_private_members(jwk: dict[str, Any]) -> bool:
    """True when the JWK carries private or symmetric key material (RFC 9449 §4.3 check 7)."""
    return any(name in jwk for name in PRIVATE_MEMBERS)


def _rsa_bits(n: object) -> int:
    if not isinstance(n, str):
        raise ValueError("n is not a string")
    return int.from_bytes(b64url_decode(n), "big").bit_length()


def _check_fits_alg(jwk: dict[str, Any], alg: str) -> None:
    """The key type (and curve or size) is the one ``alg`` signs with."""
    kty, curves = _ALG_KEYS[alg]
    if jwk.get("kty") != kty:
        raise DPoPError.invalid(Reason.BAD_KEY, "The jwk key type does not match alg.")
    if curves is not None and jwk.get("crv") not in curves:
        raise DPoPError.invalid(Reason.BAD_KEY, "The jwk curve does not match alg.")
    if kty == "RSA" and not MIN_RSA_BITS <= _rsa_bits(jwk.get("n")) <= MAX_RSA_BITS:
        raise DPoPError.invalid(Reason.BAD_KEY, f"RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits.")


def public_key_for(jwk: Any, alg: str) -> ECKey | RSAKey | OKPKey:
    """The verification key from a proof's ``jwk`` header (RFC 9449 §4.2, §4.3 checks 5-7).

    ``alg`` must already be allow-listed. Refuses a missing or non-object ``jwk``, private
    members, and keys that do not fit ``alg``; library errors become ``dpop_bad_key``.
    """
    if not isinstance(jwk, dict):
        raise DPoPError.invalid(Reason.MISSING_JWK, "The DPoP proof header has no jwk.")
    if has_private_members(jwk):
        raise DPoPError.invalid(Reason.PRIVATE_KEY, "The jwk header must not contain a private key.")
    try:
        _check_fits_alg(jwk, alg)
        thumbprint(jwk)
        return _KEY_CLASSES[jwk["kty"]].import_key(jwk)
    except DPoPError:
        raise
    except (JoseError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DPoPError.invalid(Reason.BAD_KEY, "The jwk header is not a valid public key.") from exc
