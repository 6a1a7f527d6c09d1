"""What every Vigil grant shares: token issue through ``sessions`` flows, audience
(RFC 8707), ID tokens (OIDC Core §3.1.3.3, §12.2), no-store headers, and the hook where
attestation and DPoP plug in.

Grants follow Authlib's own ``create_token_response``; ours implement its hooks. Before it
runs, the ``before_create_token_response`` hook calls the grant's ``check_proofs`` (DPoP,
device attestation); its headers come from ``TOKEN_RESPONSE_HEADER``, which carries what
those checks add (``DPoP-Nonce``, the next attestation challenge)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.policy import GrantType, PolicyDecision, TokenContext, apply_token_policies
from idp.oauth.http_headers import NO_STORE
from sessions.flows.tokens import IssuedTokens, issue_access_token, issue_refresh_token
from sessions.models import DeviceSession

from .. import resources
from ..claims import id_token_claims
from ..context import RequestContext
from ..errors import InvalidTargetError

#: Access-token claim and token-response member of a session whose device did not attest.
DEVICE_ATTESTED_CLAIM = "device_attested"


def unattested_device(session: DeviceSession | None) -> bool:
    """Whether ``session`` is bound to a device enrolled by the fallback (no query: the device
    comes with the session, and a session without one has ``device_id`` None)."""
    device = session.device if session is not None and session.device_id is not None else None
    return device is not None and not device.attested


TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


def _check_proofs(grant: Any) -> None:
    grant.check_proofs()


class VigilGrantMixin:
    request: Any
    GRANT_TYPE: str

    def __init__(self, request: Any, server: Any) -> None:
        super().__init__(request, server)  # type: ignore[call-arg]
        self.register_hook("before_create_token_response", _check_proofs)  # type: ignore[attr-defined]

    def check_proofs(self) -> None:
        """The checks a grant makes before issuing (DPoP, attestation); none by default."""

    @property
    def context(self) -> RequestContext:
        context: RequestContext = self.request.context
        return context

    @property
    def TOKEN_RESPONSE_HEADER(self) -> list[tuple[str, str]]:  # Authlib's name
        """Authlib's response headers for this request: no-store plus what the checks added."""
        return [("Content-Type", "application/json"), *NO_STORE, *self.context.extra_headers]

    def apply_policies(
        self, *, session: DeviceSession | None, scope: str, now: datetime, user: Any = None
    ) -> PolicyDecision:
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
            device_signals=self.context.device_signals,
            attestation_failures=self.context.attestation_failures,
            upgraded_from=self.context.upgraded_from,
        )
        return apply_token_policies(context)

    def audience_for(self, session: DeviceSession | None, client: Any) -> list[str]:
        """RFC 8707: the requested resources (already checked against the grant), else the
        grant's, else the client itself."""
        if self.context.resources:
            return list(self.context.resources)
        if session is not None and session.resource:
            return list(session.resource)
        return [client.client_id]

    def narrow_resources(self, granted: list[str], scope: str) -> None:
        """RFC 8707 §2.2: a token request may name (repeating ``resource``) a subset of the
        granted resources, and its access token is for exactly those; none named, for all.
        A token of ``scope`` with ``openid`` may also be for the userinfo endpoint, granted or
        not, and one without ``openid`` never, granted or not (``resources.requestable``: a
        refresh dropping ``openid`` cannot name it). Anything else (not granted, malformed, or
        any at all when none was granted) is ``invalid_target``. The one rule of the code,
        refresh, device and client-credentials grants; it reads only the request, so a refusal
        has changed nothing."""
        requested = list(dict.fromkeys(self.request.payload.datalist.get("resource", [])))
        if requested and not set(requested) <= set(resources.requestable(granted, scope)):
            raise InvalidTargetError("The requested resource is not part of this grant.")
        self.context.resources = requested

    def issue_tokens(
        self, *, session: DeviceSession | None, scope: str, now: datetime, with_refresh: bool, user: Any = None,
        claims: dict[str, Any] | None = None, refresh_raw: str | None = None,
    ) -> IssuedTokens:
        client = self.request.client
        token_user = session.user if session is not None else user
        decision = self.apply_policies(session=session, scope=scope, now=now, user=token_user)
        unattested = unattested_device(session)
        if unattested:
            claims = {**(claims or {}), DEVICE_ATTESTED_CLAIM: False}
        access_scope = decision.scope if decision.scope is not None else scope
        access, jti, expires_in = issue_access_token(
            client=client,
            user=token_user,
            scope=access_scope,
            audience=self.audience_for(session, client),
            session=session,
            now=now,
            lifetime=decision.access_token_lifetime,
            cnf_jkt=self.context.dpop_jkt,
            extra_claims={**(claims or {}), **(decision.extra_claims or {})},
        )
        issued = IssuedTokens(access_token=access, expires_in=expires_in, scope=access_scope, jti=jti)
        if self.context.dpop_jkt:
            issued.token_type = "DPoP"
        if unattested:  # the token response says so too: the app may attest (docs/unattested-devices.md)
            issued.extra[DEVICE_ATTESTED_CLAIM] = False
        if with_refresh and session is not None and client.check_grant_type(GrantType.REFRESH_TOKEN):
            issued.refresh_token = issue_refresh_token(session, scope, now, raw=refresh_raw)
        return issued

    def add_id_token(self, issued: IssuedTokens, session: DeviceSession, scope: str) -> IssuedTokens:
        """OIDC Core §3.1.3.3 (code) and §12.2 (refresh): an ID token when ``scope`` has
        ``openid``, for both grants this one way, inside the transaction that issues. ``scope`` is
        the access token's (``issued.scope``): a token policy's reduction (docs/device-health.md)
        holds for the ID token's claims too, and a reduction without ``openid`` issues none."""
        if "openid" in scope.split():
            issued.extra["id_token"] = id_token_claims.encode(session, issued.access_token, self.request.client,
                                                              scope=scope)
        return issued
