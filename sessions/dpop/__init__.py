"""DPoP (RFC 9449): proof verification, server nonces, the jti replay cache, thumbprints.

A library: the token endpoint and resource endpoints call ``verify_proof`` and render
``DPoPError`` (``as_dict()`` for RFC 6749 bodies, ``www_authenticate()`` for 401s,
``nonce_headers()`` for ``DPoP-Nonce``). See ``docs/dpop.md``.
"""

from __future__ import annotations

from .errors import DPoPError, ErrorCode, Reason, www_authenticate
from .jwk import thumbprint
from .nonce import is_valid_nonce, issue_nonce
from .proof import (
    DPoPProof,
    access_token_hash,
    dpop_header_values,
    single_proof_from_headers,
    verify_proof,
)

__all__ = [
    "DPoPError",
    "DPoPProof",
    "ErrorCode",
    "Reason",
    "access_token_hash",
    "dpop_header_values",
    "is_valid_nonce",
    "issue_nonce",
    "single_proof_from_headers",
    "thumbprint",
    "verify_proof",
    "www_authenticate",
]
