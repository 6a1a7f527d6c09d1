"""Authorization code grant (RFC 6749 §4.1) with PKCE S256 (RFC 7636) and OpenID Connect.

A code is stored as a hash, redeemed once under a conditional UPDATE; a second use is
refused and revokes what the first use issued (RFC 6749 §4.1.2). A code requested with
``dpop_jkt`` (RFC 9449 §10) is only exchanged with a DPoP proof of that very key.
"""

from __future__ import annotations

from datetime import timedelta
from hmac import compare_digest
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from sessions.flows import revocation, tokens as token_flows

from ...crypto import token_hash
from ...events import EventType, client_ip, record
from ...sql import JoinedQuery, Part, Statement
from ...models import AuthorizationCode
from ..claims import id_token_claims
from ..attestation_binding import enroll_at_code_exchange
from ..dpop_binding import check_token_request
from .base import TOKEN_AUTH_METHODS, VigilGrantMixin


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only; required whenever the client's policy says so (always for public).
    A confidential OpenID client with PKCE off must send ``nonce`` and ``openid`` instead
    (RFC 9700 §2.1.1; ``Client.without_pkce_problem``)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        client = grant.request.client
        if not data.get("code_challenge") and client is not None:
            problem = client.without_pkce_problem(grant.request.payload.scope, data.get("nonce"))
            if problem:
                raise InvalidRequestError(problem)
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class OpenIDCode(_OpenIDCode):
    """OIDC Core §3.1 on top of the code grant: nonce replay check and our own ID token."""

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return AuthorizationCode.objects.filter(client__client_id=request.payload.client_id, nonce=nonce).exists()

    def generate_user_info(self, user: Any, scope: str) -> dict[str, Any]:
        from ..claims import userinfo_claims

        return userinfo_claims(user, scope)

    def __call__(self, grant: Any) -> None:
        """Like Authlib's, minus its ``prompt`` handling: ours lives in ``idp.flows.authorize``
        because it needs the session's auth state (max_age, acr, step-up)."""
        grant.register_hook("after_create_token_response", self.process_token)
        if "openid" in (grant.request.payload.scope or "").split():
            grant.register_hook(
                "after_validate_authorization_request_payload", self.validate_openid_authorization_request
            )

    def process_token(self, grant: Any, response: Any) -> Any:
        _, token, _ = response
        scope = token.get("scope") or ""
        session = grant.request.vigil_session
        if "openid" in scope.split() and session is not None:
            token["id_token"] = id_token_claims.encode(session, token.get("access_token"), grant.request.client)
        return token


# The code with its user, by hash and client: one statement built once (idp/sql.py).
_CODE_QUERY = JoinedQuery(
    lambda: [Part(AuthorizationCode, "c"), Part(get_user_model(), "u", on="u.id = c.user_id", parent="c", attr="user")],
    where="c.code_hash = %s AND c.client_id = %s",
)
# Claiming is one conditional UPDATE: of two concurrent exchanges exactly one wins.
_CLAIM_CODE = Statement(AuthorizationCode, "UPDATE {table} SET used_at = %s WHERE id = %s AND used_at IS NULL",
                        ["used_at", "id"])


class AuthorizationCodeGrant(VigilGrantMixin, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    AUTHORIZATION_CODE_LENGTH = 48

    def save_authorization_code(self, code: str, request: Any) -> AuthorizationCode:
        from ...app_settings import app_settings

        now = timezone.now()
        state = request.vigil_auth
        data = request.payload.data
        return AuthorizationCode.objects.create(
            code_hash=token_hash(code),
            client=request.client,
            user=request.user,
            redirect_uri=request.payload.redirect_uri or "",
            scope=request.scope or "",
            resource=list(request.vigil_resources),
            nonce=data.get("nonce") or "",
            code_challenge=data.get("code_challenge") or "",
            code_challenge_method=data.get("code_challenge_method") or "",
            auth_time=state.auth_datetime,
            amr=list(state.amr),
            acr=state.acr,
            browser_sid=state.sid,
            dpop_jkt=request.vigil_code_dpop_jkt,
            created_at=now,
            expires_at=now + timedelta(seconds=app_settings.AUTHORIZATION_CODE_LIFETIME),
        )

    def issue_code(self, grant_user: Any) -> list[tuple[str, str]]:
        """RFC 6749 §4.1.2: create and store the code; returns the response parameters
        (``code``, ``state``), which ``idp.flows.authorize_response`` encodes in the
        requested response mode."""
        self.request.user = grant_user
        code = self.generate_authorization_code()
        self.save_authorization_code(code, self.request)
        params = [("code", code)]
        if self.request.payload.state:
            params.append(("state", self.request.payload.state))
        return params

    def query_authorization_code(self, code: str, client: Any) -> AuthorizationCode | None:
        if not isinstance(code, str) or len(code) > 512:
            return None
        found = _CODE_QUERY.first([token_hash(code), client.pk])
        if found is None:
            return None
        item = found["c"]
        assert isinstance(item, AuthorizationCode)
        item.client = client
        if item.used_at is not None:
            self._refuse_reuse(item)
            return None
        if item.is_expired() or not item.user.is_active:
            return None
        return item

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Codes are claimed atomically in ``create_token_response``; nothing to delete."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Any:
        return authorization_code.user

    def _refuse_reuse(self, code: AuthorizationCode) -> None:
        now = timezone.now()
        token_flows.revoke_for_code_reuse(code, now=now)
        record(
            EventType.OAUTH_CODE_REUSE,
            outcome="denied",
            reason=revocation.Reason.CODE_REUSE,
            user=code.user,
            client_id=code.client.client_id,
            request=self.request.django_request,
        )

    def _check_code_binding(self, code: AuthorizationCode, jkt: str | None) -> None:
        """RFC 9449 §10: a code bound to a key (``dpop_jkt``) needs a proof of that key. The RFC
        says only "reject"; we answer ``invalid_grant`` (the grant is bound to another key, as
        with a PKCE mismatch) and leave the code unused, so a thief's attempt with their own key
        cannot burn the legitimate client's code."""
        if not code.dpop_jkt or (jkt is not None and compare_digest(jkt, code.dpop_jkt)):
            return
        record(
            EventType.DPOP_REFUSED,
            outcome="denied",
            reason="dpop_jkt_mismatch" if jkt else "dpop_jkt_missing_proof",
            user=code.user,
            client_id=code.client.client_id,
            request=self.request.django_request,
        )
        raise InvalidGrantError("This code is bound to a DPoP key (dpop_jkt): send a DPoP proof of that key.")

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        code: AuthorizationCode = self.request.authorization_code
        jkt = check_token_request(self)
        self._check_code_binding(code, jkt)
        device = enroll_at_code_exchange(self, self.request.form.get("code") or "")
        now = timezone.now()
        with transaction.atomic():
            claimed = _CLAIM_CODE.run(now, code.pk)
            if claimed:
                session = token_flows.start_session(
                    code,
                    ip=client_ip(self.request.django_request),
                    now=now,
                    dpop_jkt=jkt if code.client.is_public else "",
                    device=device,
                )
                issued = self.issue_tokens(session=session, scope=code.scope, now=now, with_refresh=True)
        if not claimed:
            self._refuse_reuse(code)
            raise InvalidGrantError("The authorization code has already been used.")
        self.request.user = code.user
        self.request.vigil_session = session
        record(
            EventType.OAUTH_TOKEN_ISSUED,
            user=code.user,
            client_id=code.client.client_id,
            session_id=session.sid,
            request=self.request.django_request,
            grant_type="authorization_code",
            jti=issued.jti,
        )
        return 200, issued.as_response(), self.response_headers()
