"""What every Vigil grant shares: token issue through ``sessions`` flows, audience
(RFC 8707), no-store headers, and the hook where attestation and DPoP plug in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sessions.flows.tokens import IssuedTokens, issue_access_token, issue_refresh_token
from sessions.models import DeviceSession

from core.policy import PolicyDecision, TokenContext, apply_token_policies
from idp.oauth.http_headers import NO_STORE

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


class VigilGrantMixin:
    request: Any

    def apply_policies(self, *, session: DeviceSession | None, scope: str, now: datetime, user: Any = None) -> PolicyDecision:
        """Run the registered token policies (risk, device health) before signing anything."""
        context = TokenContext(
            grant_type=self.GRANT_TYPE,
            client=self.request.client,
            user=session.user if session is not None else user,
            session=session,
            scope=scope,
            now=now,
            request=self.request.django_request,
            device=getattr(session, "device", None) if session is not None else None,
            device_signals=self.request.vigil_device_signals,
            attestation_failures=self.request.vigil_attestation_failures,
        )
        return apply_token_policies(context)

    def audience_for(self, session: DeviceSession | None, client: Any) -> list[str]:
        """RFC 8707: the requested resources (already checked against the grant), else the
        grant's, else the client itself."""
        if self.request.vigil_resources:
            return list(self.request.vigil_resources)
        if session is not None and session.resource:
            return list(session.resource)
        return [client.client_id]

    def narrow_resources(self, granted: list[str]) -> None:
        """A token request may ask for a subset of the granted resources, never more."""
        from ..errors import InvalidTargetError

        requested = list(self.request.payload.datalist.get("resource", []))
        if requested and not set(requested) <= set(granted):
            raise InvalidTargetError("The requested resource is not part of this grant.")
        self.request.vigil_resources = requested

    def issue_tokens(
        self, *, session: DeviceSession | None, scope: str, now: datetime, with_refresh: bool, user: Any = None
    ) -> IssuedTokens:
        client = self.request.client
        token_user = session.user if session is not None else user
        decision = self.apply_policies(session=session, scope=scope, now=now, user=token_user)
        access_scope = decision.scope if decision.scope is not None else scope
        access, jti, expires_in = issue_access_token(
            client=client,
            user=token_user,
            scope=access_scope,
            audience=self.audience_for(session, client),
            session=session,
            now=now,
            lifetime=decision.access_token_lifetime,
            cnf_jkt=self.request.vigil_dpop_jkt,
            extra_claims=decision.extra_claims,
        )
        issued = IssuedTokens(access_token=access, expires_in=expires_in, scope=access_scope, jti=jti)
        if self.request.vigil_dpop_jkt:
            issued.token_type = "DPoP"
        if with_refresh and session is not None and client.check_grant_type("refresh_token"):
            issued.refresh_token = issue_refresh_token(session, scope, now)
        return issued

    def response_headers(self) -> list[tuple[str, str]]:
        return [("Content-Type", "application/json"), *NO_STORE, *self.request.vigil_extra_headers]
