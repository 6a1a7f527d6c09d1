"""DPoP errors: one exception type with an OAuth error code and a stable reason.

``error`` is what goes on the wire (RFC 9449 §12.2: ``invalid_dpop_proof`` or
``use_dpop_nonce``); ``reason`` is a stable, finer code for security events and logs
(``dpop_replay``, ``dpop_bad_signature``...). Descriptions are fixed strings and never echo
request input, so they are safe in an RFC 6749 §5.2 body and in a quoted header parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from ..app_settings import app_settings


class ErrorCode(StrEnum):
    """Error codes of RFC 9449 §12.2 (the ``error`` on the wire)."""

    INVALID_DPOP_PROOF = "invalid_dpop_proof"
    USE_DPOP_NONCE = "use_dpop_nonce"


class Reason(StrEnum):
    """Stable reasons carried by ``DPoPError.reason``, one per check of RFC 9449 §4.3."""

    MISSING = "dpop_missing"
    MULTIPLE_HEADERS = "dpop_multiple_headers"
    MALFORMED = "dpop_malformed"
    BAD_TYP = "dpop_bad_typ"
    BAD_ALG = "dpop_bad_alg"
    MISSING_JWK = "dpop_missing_jwk"
    PRIVATE_KEY = "dpop_private_key"
    BAD_KEY = "dpop_bad_key"
    BAD_SIGNATURE = "dpop_bad_signature"
    MISSING_CLAIM = "dpop_missing_claim"
    MALFORMED_CLAIM = "dpop_malformed_claim"
    HTM_MISMATCH = "dpop_htm_mismatch"
    HTU_MISMATCH = "dpop_htu_mismatch"
    NONCE_MISSING = "dpop_nonce_missing"
    NONCE_INVALID = "dpop_nonce_invalid"
    IAT_STALE = "dpop_iat_stale"
    IAT_FUTURE = "dpop_iat_future"
    ATH_MISSING = "dpop_ath_missing"
    ATH_MISMATCH = "dpop_ath_mismatch"
    KEY_MISMATCH = "dpop_key_mismatch"
    REPLAY = "dpop_replay"


class DPoPError(Exception):
    """A DPoP proof was refused.

    ``nonce`` is set for ``use_dpop_nonce``: send it back in a ``DPoP-Nonce`` header
    (RFC 9449 §8 at the token endpoint, §9 at a resource server).
    """

    def __init__(self, error: str, description: str, nonce: str | None = None, *, reason: str = ""):
        super().__init__(f"{reason or error}: {description}")
        self.error = error
        self.description = description
        self.nonce = nonce
        self.reason = reason or error

    @classmethod
    def invalid(cls, reason: str, description: str) -> DPoPError:
        return cls(ErrorCode.INVALID_DPOP_PROOF, description, reason=reason)

    @classmethod
    def use_nonce(cls, reason: str, description: str, nonce: str) -> DPoPError:
        return cls(ErrorCode.USE_DPOP_NONCE, description, nonce, reason=reason)

    def as_dict(self) -> dict[str, Any]:
        """The RFC 6749 §5.2 JSON error body (HTTP 400 at the token endpoint)."""
        return {"error": self.error, "error_description": self.description}

    def nonce_headers(self) -> dict[str, str]:
        """``{"DPoP-Nonce": nonce}`` for ``use_dpop_nonce``, else ``{}``."""
        return {"DPoP-Nonce": self.nonce} if self.nonce else {}

    def www_authenticate(self, *, algs: Sequence[str] | None = None, realm: str | None = None) -> str:
        """The ``WWW-Authenticate`` value for a resource server's 401 (RFC 9449 §7.1, §9)."""
        return www_authenticate(self.error, self.description, algs=algs, realm=realm)


def _quote(value: str) -> str:
    """An RFC 9110 §5.6.4 quoted-string; characters outside printable ASCII are dropped."""
    safe = "".join(ch for ch in value if " " <= ch <= "~")
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(
    error: str | None = None,
    description: str | None = None,
    *,
    algs: Sequence[str] | None = None,
    realm: str | None = None,
) -> str:
    """A ``WWW-Authenticate: DPoP ...`` challenge (RFC 9449 §7.1).

    ``algs`` defaults to ``SESSIONS_DPOP_ALGS``; pass ``error="invalid_token"`` for a bad
    access token, ``"invalid_dpop_proof"`` / ``"use_dpop_nonce"`` for a bad proof.
    """
    params: list[tuple[str, str]] = []
    if realm:
        params.append(("realm", realm))
    if error:
        params.append(("error", error))
        if description:
            params.append(("error_description", description))
    params.append(("algs", " ".join(app_settings.DPOP_ALGS if algs is None else algs)))
    return "DPoP " + ", ".join(f"{name}={_quote(value)}" for name, value in params)
