"""Protocol errors beyond RFC 6749's, rendered by Authlib as RFC 6749 §5.2 JSON bodies.

``use_attestation_challenge`` / ``invalid_client_attestation``: IETF draft OAuth 2.0
Attestation-Based Client Authentication. ``invalid_dpop_proof`` / ``use_dpop_nonce``:
RFC 9449 §5 and §8. Each may carry extra response headers (a fresh challenge or nonce).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from authlib.oauth2 import OAuth2Error


class OAuthErrorCode(StrEnum):
    """Every ``error`` our OAuth endpoints answer: RFC 6749 §4.1.2.1 and §5.2, RFC 7009 §2.2.1,
    OpenID Connect Core 1.0 §3.1.2.6, RFC 9101 §6.3, RFC 8707 §2, RFC 8628 §3.5, RFC 9449 §12.2, and the draft
    Attestation-Based Client Authentication."""

    INVALID_REQUEST = "invalid_request"
    INVALID_CLIENT = "invalid_client"
    INVALID_GRANT = "invalid_grant"
    UNAUTHORIZED_CLIENT = "unauthorized_client"
    UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
    UNSUPPORTED_RESPONSE_TYPE = "unsupported_response_type"
    UNSUPPORTED_TOKEN_TYPE = "unsupported_token_type"
    INVALID_SCOPE = "invalid_scope"
    ACCESS_DENIED = "access_denied"
    SERVER_ERROR = "server_error"
    TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"
    INTERACTION_REQUIRED = "interaction_required"
    LOGIN_REQUIRED = "login_required"
    CONSENT_REQUIRED = "consent_required"
    ACCOUNT_SELECTION_REQUIRED = "account_selection_required"
    INVALID_REQUEST_OBJECT = "invalid_request_object"
    INVALID_REQUEST_URI = "invalid_request_uri"
    INVALID_TARGET = "invalid_target"
    AUTHORIZATION_PENDING = "authorization_pending"  # RFC 8628 §3.5
    SLOW_DOWN = "slow_down"
    EXPIRED_TOKEN = "expired_token"
    INVALID_DPOP_PROOF = "invalid_dpop_proof"
    USE_DPOP_NONCE = "use_dpop_nonce"
    INVALID_CLIENT_ATTESTATION = "invalid_client_attestation"
    USE_ATTESTATION_CHALLENGE = "use_attestation_challenge"


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

    error = OAuthErrorCode.INVALID_TARGET


class InvalidClientAttestationError(VigilOAuth2Error):
    error = OAuthErrorCode.INVALID_CLIENT_ATTESTATION
    status_code = 400


class UseAttestationChallengeError(VigilOAuth2Error):
    error = OAuthErrorCode.USE_ATTESTATION_CHALLENGE
    status_code = 400


class TemporarilyUnavailableError(VigilOAuth2Error):
    """RFC 6749 §4.1.2.1's code in a §5.2 body: a service the decision needs (Apple's DeviceCheck
    API, for a client that fails closed) cannot answer now; retry after ``Retry-After``."""

    error = OAuthErrorCode.TEMPORARILY_UNAVAILABLE
    status_code = 503


class SlowDownError(VigilOAuth2Error):
    """Too many requests of one grant (RFC 8628 §3.5's ``slow_down``, HTTP 429 with
    ``Retry-After``): the refreshes of an unattested device's session (docs/unattested-devices.md)."""

    error = OAuthErrorCode.SLOW_DOWN
    status_code = 429


class RateLimitedError(SlowDownError):
    """Too many requests to an endpoint that stores something for a public client: ``/par``
    (RFC 9126 §2.3 lists 429 for a request rate exceeded, with no error code of its own) and
    ``/device_authorization`` (RFC 8628 §3.1, which has none either). The body is ``slow_down``,
    the registered OAuth error (RFC 8628 §7.2) that means "wait before asking again" and the
    one our token endpoint's other 429 sends, with ``Retry-After`` (RFC 9110 §10.2.3): RFC
    6749's ``temporarily_unavailable`` is our 503 for an outage, and ``invalid_request`` would
    tell the client its request was wrong. Already recorded when raised
    (``idp.flows.request_rates``), with the bucket that refused it."""

    def __init__(self, description: str, *, retry_after: int):
        super().__init__(description, headers=[("Retry-After", str(retry_after))])


class InvalidDPoPProofError(VigilOAuth2Error):
    error = OAuthErrorCode.INVALID_DPOP_PROOF
    status_code = 400


class UseDPoPNonceError(VigilOAuth2Error):
    error = OAuthErrorCode.USE_DPOP_NONCE
    status_code = 400


class InteractionRequiredError(VigilOAuth2Error):
    """The session needs the user again (step-up demanded by policy)."""

    error = OAuthErrorCode.INTERACTION_REQUIRED
    status_code = 400

