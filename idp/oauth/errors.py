"""Protocol errors beyond RFC 6749's, rendered by Authlib as RFC 6749 §5.2 JSON bodies.

``use_attestation_challenge`` / ``invalid_client_attestation``: IETF draft OAuth 2.0
Attestation-Based Client Authentication. ``invalid_dpop_proof`` / ``use_dpop_nonce``:
RFC 9449 §5 and §8. Each may carry extra response headers (a fresh challenge or nonce).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error


class VigilOAuth2Error(OAuth2Error):
    """An OAuth error with optional extra headers (e.g. ``DPoP-Nonce``)."""

    extra_headers: list[tuple[str, str]]

    def __init__(self, description: str | None = None, *, headers: list[tuple[str, str]] | None = None, **kw: Any):
        super().__init__(description=description, **kw)
        self.extra_headers = headers or []

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), *self.extra_headers]


class InvalidTargetError(VigilOAuth2Error):
    """RFC 8707 §2: the requested resource is not allowed for this client."""

    error = "invalid_target"


class InvalidClientAttestationError(VigilOAuth2Error):
    error = "invalid_client_attestation"
    status_code = 400


class UseAttestationChallengeError(VigilOAuth2Error):
    error = "use_attestation_challenge"
    status_code = 400


class InvalidDPoPProofError(VigilOAuth2Error):
    error = "invalid_dpop_proof"
    status_code = 400


class UseDPoPNonceError(VigilOAuth2Error):
    error = "use_dpop_nonce"
    status_code = 400


class InteractionRequiredError(VigilOAuth2Error):
    """The session needs the user again (step-up demanded by policy)."""

    error = "interaction_required"
    status_code = 400

