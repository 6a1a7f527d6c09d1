"""What one OAuth request carries between the steps of its handling, typed and in one place.

The authorization view fills the authorization part (auth state, RFC 8707 resources, the
RFC 9449 §10 ``dpop_jkt``); at the token endpoint the DPoP check (RFC 9449 §5) and the
attestation check (docs/attestation.md §3) leave what they verified for the token issue,
the policies and the response headers. Stored once on the Authlib request as
``request.context`` (``idp.oauth.server.VigilOAuth2Request``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.cache import FirstClaim
from core.deferred_write import DeferredWrite


@dataclass
class RequestContext:
    """The per-request state of one authorization or token request."""

    #: The browser login's auth state (``accounts.authstate.AuthState``) at authorization.
    auth: Any = None
    #: The family the token request issued for (set once it exists).
    session: Any = None
    #: RFC 8707 resources: requested at authorization, or narrowed at the token endpoint.
    resources: list[str] = field(default_factory=list)
    #: The key thumbprint of the token request's verified DPoP proof (RFC 9449 §5).
    dpop_jkt: str | None = None
    #: That proof's ``jti`` mark, left to be made with the attestation challenge's claim (a refresh).
    dpop_replay: FirstClaim | None = None
    #: The public JWK of that proof (the device key of an unattested enrollment).
    dpop_jwk: dict[str, Any] | None = None
    #: The unattested device a refresh upgrades its family away from (docs/unattested-devices.md).
    upgraded_from: Any = None
    #: RFC 9449 §10 ``dpop_jkt`` of the authorization request, stored with the code.
    code_dpop_jkt: str = ""
    #: Headers the checks add to the response (DPoP-Nonce, the next attestation challenge).
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    #: Device signals, self-reported but covered by the verified attested binding.
    device_signals: dict[str, Any] | None = None
    #: The attested device enrolled at this code exchange (``attestation.models.Device``).
    device: Any = None
    #: The device's write a good refresh proof left to the rotation (``core.deferred_write``).
    device_write: DeferredWrite | None = None
    #: Refused attestation proofs just before this good one (for the policies).
    attestation_failures: int | None = None
    #: The browser session's hold on the pushed request this authorization came from (RFC 9126 §4).
    pushed_mark: str = ""
    #: The token a client may not introspect (RFC 7662 §4), kept for the event.
    introspection_refused: Any = None
    #: The introspection's event was written with its look-up (``idp.oauth.introspect_jwt``).
    introspection_recorded: bool = False
