"""Refresh token grant (RFC 6749 §6) with rotation on every use and family revocation on
reuse (RFC 9700 §4.14.2). A refused refresh (policy, attestation) rolls back: the presented
token stays usable, nothing is lost."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.hooks import hooked
from django.db import transaction
from django.utils import timezone

from sessions.flows import tokens as token_flows
from sessions.models import RefreshToken, SessionStatus

from ...events import client_ip, record
from ..claims import id_token_claims
from ..attestation_binding import verify_at_refresh
from ..dpop_binding import check_token_request
from .base import TOKEN_AUTH_METHODS, VigilGrantMixin


class RefreshTokenGrant(VigilGrantMixin, grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        token = token_flows.find_refresh_token(refresh_token, client=self.request.client)
        if token is None:
            return None
        client_id = token.session.client.client_id
        if token.revoked_at is not None or token.session.status == SessionStatus.REVOKED:
            self._event("revoked", token, client_id)
            return None
        if token.rotated_at is not None and not token_flows.within_grace(token, timezone.now()):
            token_flows.revoke_session(token.session, "refresh_token_reuse")
            self._event("reuse", token, client_id)
            return None
        if token.is_expired():
            self._event("expired", token, client_id)
            return None
        return token

    def _event(self, reason: str, token: RefreshToken, client_id: str) -> None:
        record(
            "oauth.refresh_refused",
            outcome="denied",
            reason=reason,
            user=token.session.user,
            client_id=client_id,
            session_id=token.session.sid,
            request=self.request.django_request,
        )

    def authenticate_user(self, refresh_token: RefreshToken) -> Any:
        user = refresh_token.session.user
        return user if user.is_active else None

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        """Rotation marks the old token used inside ``create_token_response``."""

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        presented: RefreshToken = self.request.refresh_token
        if self.authenticate_user(presented) is None:
            raise InvalidGrantError("The user of this refresh token is inactive.")
        self.narrow_resources(list(presented.session.resource))
        check_token_request(self, bound_jkt=presented.session.dpop_jkt)
        verify_at_refresh(self, presented.session, self.request.form.get("refresh_token") or "")
        now = timezone.now()
        scope = self.request.payload.scope or presented.scope
        try:
            with transaction.atomic():
                session, new_refresh = token_flows.rotate(
                    presented, now=now, ip=client_ip(self.request.django_request)
                )
                self.request.vigil_session = session
                issued = self.issue_tokens(session=session, scope=scope, now=now, with_refresh=False)
                issued.refresh_token = new_refresh
        except token_flows.RefreshRefused as refused:
            if refused.reason == "reuse":
                token_flows.revoke_session(presented.session, "refresh_token_reuse")
            self._event(refused.reason, presented, presented.session.client.client_id)
            description = (
                "Step-up authentication is required: send the user through authorization again."
                if refused.reason == "step_up_required"
                else "The refresh token is no longer valid."
            )
            raise InvalidGrantError(description) from refused
        self.request.user = session.user
        if "openid" in scope.split():
            issued.extra["id_token"] = id_token_claims.encode(session, issued.access_token, self.request.client)
        record(
            "oauth.token_refreshed",
            user=session.user,
            client_id=session.client.client_id,
            session_id=session.sid,
            request=self.request.django_request,
            jti=issued.jti,
        )
        return 200, issued.as_response(), self.response_headers()
