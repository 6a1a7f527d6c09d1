"""Refresh token grant (RFC 6749 §6) with rotation on every use and family revocation on
reuse (RFC 9700 §4.14.2). A refused refresh (policy, attestation) rolls back: the presented
token stays usable, nothing is lost.

The rotation, its successor, the access token and the refresh's security events commit in
one transaction, so a refresh either happened with its record or did not happen at all; a
response lost after the commit is answered again by presenting the same token (the same
successor comes back: ``sessions.flows.tokens.rotate``). The database failing anywhere on the
way leaves the token as it was and is answered like every outage (``idp.outage``: 503
``temporarily_unavailable`` with ``Retry-After``), so retrying the same token is safe."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.hooks import hooked
from django.utils import timezone

from sessions.flows import revocation
from sessions.flows import tokens as token_flows
from sessions.flows.tokens import Refusal
from sessions.models import RefreshToken, SessionStatus

from ... import events
from ...events import EventType, client_ip, record
from ..attestation_binding import verify_at_refresh
from ..claims import id_token_claims
from ..dpop_binding import check_token_request
from .base import TOKEN_AUTH_METHODS, VigilGrantMixin


class RefreshTokenGrant(VigilGrantMixin, grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        token = token_flows.find_refresh_token(refresh_token, client=self.request.client)
        if token is None:
            return None
        if token.session.status == SessionStatus.REVOKED:
            self._refused(token, Refusal.REVOKED)
            return None
        if token.revoked_at is not None or (
            token.rotated_at is not None and token_flows.retry_successor(token, refresh_token, timezone.now()) is None
        ):
            # Rotated and not a retry; or revoked while its family lives on (only the retired
            # grace retry did that): reuse either way (RFC 9700 §4.14.2).
            self._refused(token, Refusal.REUSE)
            return None
        if token.is_expired():
            self._refused(token, Refusal.EXPIRED)
            return None
        return token

    def _refused(self, token: RefreshToken, reason: Refusal) -> None:
        """Act on a refusal (reuse revokes the family, RFC 9700 §4.14.2) and record it."""
        if reason == Refusal.REUSE:
            revocation.revoke_session(token.session, revocation.Reason.REFRESH_REUSE)
        record(
            EventType.OAUTH_REFRESH_REFUSED,
            outcome="denied",
            reason=reason,
            user=token.session.user,
            client_id=token.session.client.client_id,
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
        raw = self.request.form.get("refresh_token") or ""
        if self.authenticate_user(presented) is None:
            raise InvalidGrantError("The user of this refresh token is inactive.")
        self.narrow_resources(list(presented.session.resource))
        check_token_request(self, bound_jkt=presented.session.dpop_jkt)
        verify_at_refresh(self, presented.session, raw)
        try:
            body = self._rotate(presented, raw)
        except token_flows.RefreshRefused as refused:
            raise self._refuse(presented, refused.reason) from refused
        return 200, body, self.response_headers()

    def _rotate(self, presented: RefreshToken, raw: str) -> dict[str, Any]:
        """Rotate and issue in one transaction that also writes the refresh's events (and those
        of the checks before it), so the response is decided once everything is committed."""
        now = timezone.now()
        scope = self.request.payload.scope or presented.scope
        with events.atomic_with_events() as written:
            rotation = token_flows.rotate(presented, raw, now=now, ip=client_ip(self.request.django_request))
            session = self.request.vigil_session = rotation.session
            issued = self.issue_tokens(session=session, scope=scope, now=now, with_refresh=False)
            issued.refresh_token = rotation.refresh_token
            if "openid" in scope.split():
                issued.extra["id_token"] = id_token_claims.encode(session, issued.access_token, self.request.client)
            written.record(
                # A retry is its own event: the same successor handed out again (issue 12).
                EventType.OAUTH_REFRESH_RETRIED if rotation.retried else EventType.OAUTH_TOKEN_REFRESHED,
                user=session.user,
                client_id=session.client.client_id,
                session_id=session.sid,
                request=self.request.django_request,
                jti=issued.jti,
            )
        self.request.user = session.user
        return issued.as_response()

    def _refuse(self, presented: RefreshToken, reason: Refusal) -> InvalidGrantError:
        """A refusal found while rotating: acted on and recorded; the error says why."""
        self._refused(presented, reason)
        description = (
            "Step-up authentication is required: send the user through authorization again."
            if reason == Refusal.STEP_UP_REQUIRED
            else "The refresh token is no longer valid."
        )
        return InvalidGrantError(description)
