"""How attestation failures surface at the OAuth endpoints (draft-ietf-oauth-attestation-based-client-auth).

Challenge problems (missing, unknown, expired, reused, for another client or purpose) and a
device that must attest again are ``use_attestation_challenge``: the response carries a fresh
challenge in the ``OAuth-Client-Attestation-Challenge`` header. Every other verification
failure is ``invalid_client_attestation`` with the stable reason as ``error_description``.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import Reason


class AttestationOAuthError(StrEnum):
    """The two ``error`` codes of draft-ietf-oauth-attestation-based-client-auth."""

    USE_ATTESTATION_CHALLENGE = "use_attestation_challenge"
    INVALID_CLIENT_ATTESTATION = "invalid_client_attestation"


USE_ATTESTATION_CHALLENGE = AttestationOAuthError.USE_ATTESTATION_CHALLENGE
INVALID_CLIENT_ATTESTATION = AttestationOAuthError.INVALID_CLIENT_ATTESTATION
CHALLENGE_HEADER = "OAuth-Client-Attestation-Challenge"

CHALLENGE_REASONS = frozenset(
    {
        Reason.CHALLENGE_UNKNOWN,
        Reason.CHALLENGE_EXPIRED,
        Reason.CHALLENGE_REUSED,
        Reason.CHALLENGE_WRONG_CLIENT,
        Reason.CHALLENGE_WRONG_PURPOSE,
        Reason.ATTESTATION_REQUIRED,
        Reason.INTEGRITY_TOKEN_REQUIRED,
    }
)


def oauth_error_code(reason: str) -> AttestationOAuthError:
    """The RFC 6749 §5.2 ``error`` for an ``AttestationError.reason``."""
    return USE_ATTESTATION_CHALLENGE if reason in CHALLENGE_REASONS else INVALID_CLIENT_ATTESTATION
