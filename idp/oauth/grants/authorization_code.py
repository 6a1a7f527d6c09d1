"""Authorization code grant (RFC 6749 §4.1) with PKCE S256 (RFC 7636) and OpenID Connect,
as hooks of Authlib's own grant.

A code is stored as a hash and redeemed by ``sessions.flows.code_exchange`` (claimed once
under a conditional UPDATE). A used code goes through every check first (redirect URI, PKCE,
the DPoP key binding) and is only then judged: the retry of an exchange whose answer was lost
gets that answer again, anything else is reuse, refused and revoking what the first use issued
(RFC 6749 §4.1.2). A code requested with ``dpop_jkt`` (RFC 9449 §10) is only exchanged with a
DPoP proof of that very key. The token request may narrow the code's resources (RFC 8707
§2.2): the access token is for those named, the family (its refresh tokens) keeps them all. A
used code is judged first (reuse whatever it asks for), and a retry is narrowed by its own
request, within the same grant, as a refresh would be.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from hmac import compare_digest
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from django.db import connection, transaction
from django.utils import timezone

from accounts import authstate
from core.crypto import first_refresh_token, token_digest
from core.events import EventType, Outcome, client_ip, record
from sessions.flows import code_exchange
from sessions.flows.code_exchange import AlreadyRedeemed, CodeReused
from sessions.flows.tokens import IssuedTokens
from sessions.models import AuthorizationCode, DeviceSession

from .. import fapi
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
    """OIDC Core §3.1 on top of the code grant: the authorization request's checks."""

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        """Whether ``nonce`` was used before at this client: a replayed authorization request
        (OIDC Core §15.5.2) is refused. Not a replay: the same sign-in sending the request again
        while its earlier code was never exchanged (a response lost after the code was
        committed, say the session's write failing into a 503): the retry gets a new code and
        the earlier one is expired (``AuthorizationCodeGrant.save_authorization_code``), so a
        failure after a commit does not turn the browser's retry into an error. Another
        sign-in, or a code already exchanged, is a replay."""
        return nonce_replayed(request.payload.client_id, nonce, _login_id(request))

    def generate_user_info(self, user: Any, scope: str) -> dict[str, Any]:
        from ..claims import userinfo_claims

        return userinfo_claims(user, scope)

    def __call__(self, grant: Any) -> None:
        """Like Authlib's, minus its ``prompt`` handling: ours lives in ``idp.flows.authorize``
        because it needs the session's auth state (max_age, acr, step-up); and minus its ID
        token: the grants add theirs one way, as they issue (``VigilGrantMixin.add_id_token``)."""
        if "openid" in (grant.request.payload.scope or "").split():
            grant.register_hook(
                "after_validate_authorization_request_payload", self.validate_openid_authorization_request
            )


def nonce_replayed(client_id: str, nonce: str, login_id: str) -> bool:
    """A code of ``nonce`` at this client exists that is not this sign-in's unexchanged one."""
    earlier = AuthorizationCode.objects.filter(client__client_id=client_id, nonce=nonce)
    if not login_id:
        return earlier.exists()
    return earlier.exclude(login_id=login_id, used_at__isnull=True).exists()


def hold_nonce(client_id: str, nonce: str) -> None:
    """Until the transaction ends, no other request stores a code of ``nonce`` at this client:
    a PostgreSQL advisory lock on the pair. SQLite (development, one process) takes none: its
    single writer keeps the inserts apart, not the check before them."""
    if connection.vendor == "postgresql":
        key = f"vigil:nonce:{client_id}:{nonce}"
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def _login_id(request: Any) -> str:
    """The login id of the browser's sign-in behind an authorization request, or ""."""
    django_request = getattr(request, "django_request", None)
    if django_request is None or getattr(django_request, "session", None) is None:  # /par: no browser session
        return ""
    state = authstate.current(django_request)
    return state.login_id if state is not None else ""


class AuthorizationCodeGrant(VigilGrantMixin, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    AUTHORIZATION_CODE_LENGTH = 48

    def save_authorization_code(self, code: str, request: Any) -> AuthorizationCode:
        nonce, login_id = request.payload.data.get("nonce"), request.context.auth.login_id
        if not nonce:
            return self._stored(code, request, timezone.now())
        with transaction.atomic():
            # Codes of one nonce are stored one at a time, and the replay check runs again
            # under that lock: two sends at once are judged as one after the other. The same
            # sign-in's retry (OpenIDCode.exists_nonce) expires its earlier code, so one code of
            # the nonce lives; another sign-in's send is the replay it would be a moment later.
            hold_nonce(request.client.client_id, nonce)
            if nonce_replayed(request.client.client_id, nonce, login_id):
                raise InvalidRequestError("Replay attack", redirect_uri=self.redirect_uri)
            now = timezone.now()
            if login_id:
                AuthorizationCode.objects.filter(
                    client=request.client, nonce=nonce, login_id=login_id, used_at__isnull=True, expires_at__gt=now,
                ).update(expires_at=now)
            return self._stored(code, request, now)

    def _stored(self, code: str, request: Any, now: datetime) -> AuthorizationCode:
        state = request.context.auth
        data = request.payload.data
        return AuthorizationCode.objects.create(
            code_hash=token_digest(code),
            client=request.client,
            user=request.user,
            redirect_uri=request.payload.redirect_uri or "",
            scope=request.scope or "",
            resource=list(request.context.resources),
            nonce=data.get("nonce") or "",
            code_challenge=data.get("code_challenge") or "",
            code_challenge_method=data.get("code_challenge_method") or "",
            auth_time=state.auth_datetime,
            amr=list(state.amr),
            acr=state.acr,
            browser_sid=state.sid,
            login_id=state.login_id,
            dpop_jkt=request.context.code_dpop_jkt,
            created_at=now,
            expires_at=now + timedelta(seconds=fapi.code_lifetime(request.client)),
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
        """Authlib hook: the code when it may be exchanged, or was already: a used code is
        judged in ``generate_token``, after the redirect URI, PKCE and DPoP checks, so only a
        presenter who passes them can have what it issued revoked (or its answer again)."""
        return code_exchange.find(code, client, now=timezone.now())

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Any:
        """Authlib hook: the code's user (an inactive one's code is not found)."""
        return authorization_code.user

    def check_proofs(self) -> None:
        """Before issuing: the resources (RFC 8707 §2.2, first: a refusal leaves the code and
        the DPoP proof unused), the DPoP proof (RFC 9449 §5), the code's key binding (§10) and
        the device's enrollment attestation (docs/attestation.md §3). A used code is judged
        before its resources (reuse is reuse whatever it asks for): a retry is narrowed as it
        is answered (``generate_token``)."""
        code: AuthorizationCode = self.request.authorization_code
        if code.used_at is None:  # the family keeps every granted resource (``start_session``)
            self.narrow_resources(list(code.resource), code.scope)
        self._check_code_binding(code, check_token_request(self))
        if code.used_at is None:  # a used code enrolls nothing: its family's device was enrolled
            self.context.device = enroll_at_code_exchange(self, self.request.form.get("code") or "")

    def generate_token(self, user: Any = None, scope: str | None = None, grant_type: str | None = None,
                       expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
        """Authlib hook: redeem the code and issue (``sessions.flows.code_exchange``)."""
        code: AuthorizationCode = self.request.authorization_code
        raw = self.request.form.get("code") or ""
        now = timezone.now()

        def issue(session: DeviceSession, *, refresh: bool = include_refresh_token) -> IssuedTokens:
            issued = self.issue_tokens(session=session, scope=code.scope, now=now, with_refresh=refresh,
                                       refresh_raw=first_refresh_token(raw))
            return self.add_id_token(issued, session, issued.scope)

        def reissue(session: DeviceSession) -> IssuedTokens:
            """A retry (``code_exchange.redeem_again``), narrowed by its own request: a refusal
            rolls back, the family untouched."""
            self.narrow_resources(list(code.resource), code.scope)
            return issue(session, refresh=False)

        result = code_exchange.exchange(
            code, raw, now=now, issue=issue, reissue=reissue,
            ip=client_ip(self.request.django_request),
            dpop_jkt=(self.context.dpop_jkt or "") if code.client.is_public or self._unattested() else "",
            proof_jkt=self.context.dpop_jkt or "",
            device=self.context.device,
            request=self.request.django_request,
        )
        if isinstance(result, AlreadyRedeemed):
            raise InvalidGrantError("The authorization code has already been used and its answer cannot be given "
                                    "again (the device's attestation was single-use): sign in again.")
        if isinstance(result, CodeReused):
            raise InvalidGrantError("The authorization code has already been used.")
        self.context.session = result.session
        return result.issued.as_response()

    def _unattested(self) -> bool:
        """An unattested device's family is always bound to its DPoP key, its device key."""
        device = self.context.device
        return device is not None and not device.attested

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Authlib hook: nothing to delete, the exchange claimed the code (and keeps it, to
        recognise its reuse)."""

    def _check_code_binding(self, code: AuthorizationCode, jkt: str | None) -> None:
        """RFC 9449 §10: a code bound to a key (``dpop_jkt``) needs a proof of that key. The RFC
        says only "reject"; we answer ``invalid_grant`` (the grant is bound to another key, as
        with a PKCE mismatch) and leave the code unused, so a thief's attempt with their own key
        cannot burn the legitimate client's code."""
        if not code.dpop_jkt or (jkt is not None and compare_digest(jkt, code.dpop_jkt)):
            return
        record(
            EventType.DPOP_REFUSED,
            outcome=Outcome.DENIED,
            reason="dpop_jkt_mismatch" if jkt else "dpop_jkt_missing_proof",
            user=code.user,
            client_id=code.client.client_id,
            request=self.request.django_request,
        )
        raise InvalidGrantError("This code is bound to a DPoP key (dpop_jkt): send a DPoP proof of that key.")
