"""Refresh token grant (RFC 6749 §6) with rotation on every use and family revocation on
reuse (RFC 9700 §4.14.2), as hooks of Authlib's own grant.

The lifecycle itself (find, judge, rotate under the lock, revoke, record) is
``sessions.flows.refresh``; this class only plugs it into Authlib's steps and translates its
result into HTTP. A refused refresh (policy, attestation) rolls back: the presented token
stays usable, nothing is lost. A response lost after the commit is answered again by
presenting the same token (the same successor comes back). The database failing anywhere on
the way is answered like every outage (``core.outage``: 503 ``temporarily_unavailable`` with
``Retry-After``), so retrying the same token is safe."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from django.utils import timezone

from core.cache import claiming_first
from core.events import client_ip
from sessions.flows import refresh, rotation_statement
from sessions.flows.refresh import Refusal, Refused
from sessions.flows.tokens import IssuedTokens
from sessions.models import DeviceSession, RefreshToken

from ..attestation_binding import verify_at_refresh
from ..dpop_binding import check_token_request
from .base import TOKEN_AUTH_METHODS, VigilGrantMixin

_REFUSED = {
    Refusal.STEP_UP_REQUIRED: "Step-up authentication is required: send the user through authorization again.",
    Refusal.DEVICE_CHANGED: "The session was bound to another device meanwhile: refresh with that device's proof.",
}


class RefreshTokenGrant(VigilGrantMixin, grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        """Authlib hook: find and judge the presented token (refusals are acted on and
        recorded by the lifecycle; Authlib answers ``invalid_grant``)."""
        found = refresh.present(
            refresh_token, client=self.request.client, now=timezone.now(), request=self.request.django_request
        )
        return found if isinstance(found, RefreshToken) else None

    def authenticate_user(self, refresh_token: RefreshToken) -> Any:
        """Authlib hook: the family's user, who must still be active."""
        user = refresh_token.session.user
        if not user.is_active:
            raise InvalidGrantError("The user of this refresh token is inactive.")
        return user

    def check_proofs(self) -> None:
        """Before issuing: the user, the resources (RFC 8707), the DPoP proof of the family's key
        (RFC 9449 §5) and fresh attestation from its device (docs/attestation.md §3)."""
        presented: RefreshToken = self.request.refresh_token
        self.authenticate_user(presented)
        self.narrow_resources(list(presented.session.resource), self._scope(presented))
        # The proof's jti is marked with the challenge's claim: one round trip, the jti first.
        check_token_request(self, bound_jkt=presented.session.dpop_jkt, replay_first=True)
        carried = rotation_statement.carries_device_write(presented)  # the rotation writes the device
        with claiming_first(self.context.dpop_replay):
            verify_at_refresh(self, presented.session, self._raw(), defer_write=carried)

    def issue_token(self, user: Any, refresh_token: RefreshToken) -> dict[str, Any]:
        """Authlib hook: rotate and issue (``sessions.flows.refresh.rotate``); a refusal is an
        ``invalid_grant`` that says why."""
        now = timezone.now()
        scope = self._scope(refresh_token)

        def issue(session: DeviceSession) -> IssuedTokens:
            issued = self.issue_tokens(session=session, scope=scope, now=now, with_refresh=False)
            return self.add_id_token(issued, session, issued.scope)

        result = refresh.rotate(
            refresh_token, self._raw(), now=now, issue=issue, proof_jkt=self.context.dpop_jkt,
            ip=client_ip(self.request.django_request), request=self.request.django_request,
            upgraded_from=self.context.upgraded_from, device_write=self.context.device_write,
        )
        if isinstance(result, Refused):
            raise InvalidGrantError(_REFUSED.get(result.reason, "The refresh token is no longer valid."))
        self.context.session = result.session
        return result.issued.as_response()

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        """Authlib hook: nothing left to do, the rotation marked the old token used."""

    def _scope(self, refresh_token: RefreshToken) -> str:
        """The new access token's: the requested one (Authlib checked it is no wider), else the
        family's."""
        return self.request.payload.scope or refresh_token.scope

    def _raw(self) -> str:
        return self.request.form.get("refresh_token") or ""
