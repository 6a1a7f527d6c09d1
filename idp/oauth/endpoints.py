"""Introspection (RFC 7662) and revocation (RFC 7009) over our JWT access tokens and
hashed refresh tokens.

Who may see what (RFC 7662 §4, RFC 7009 §2.1): a client may introspect and revoke the
tokens issued to it; a confidential client registered as the resource server of an
audience (``Client.served_resources``) may also introspect the access tokens whose ``aud``
names it. Any other token is ``{"active": false}`` to the introspecting client, and its
revocation is refused (``unauthorized_client``) with nothing changed. Each refusal is a
security event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError, UnauthorizedClientError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from django.utils import timezone

from clients.audiences import servable
from core import jwt_tokens
from core.events import EventType, Outcome, record
from core.json_shapes import listed
from sessions.flows import refresh
from sessions.flows import tokens as token_flows
from sessions.flows.revocation import Reason, revoke_access_token
from sessions.models import AccessToken, RefreshToken

from . import introspect_jwt
from .resources import audiences

if TYPE_CHECKING:
    from clients.models import Client

CONFIDENTIAL_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


@dataclass
class FoundToken:
    """A token we issued, whichever kind, with what introspection and revocation need."""

    kind: str  # "access_token" | "refresh_token"
    access: AccessToken | None = None
    refresh: RefreshToken | None = None
    claims: dict[str, Any] | None = None
    now: datetime | None = None  # the moment activity is judged at (the one-statement path's)

    @property
    def client(self) -> Any:
        return self.access.client if self.access else self.refresh.session.client  # type: ignore[union-attr]

    def check_client(self, client: Client) -> bool:
        """Compared by key: the token's client row is not read to learn it is another's."""
        own = self.access.client_id if self.access else self.refresh.session.client_id  # type: ignore[union-attr]
        return own == getattr(client, "pk", None)

    def audiences(self) -> set[str]:
        """The ``aud`` of an access token (RFC 9068 §2.2); refresh tokens have none beyond
        their own client."""
        return audiences(self.claims or {}) if self.access is not None else set()

    def is_expired(self) -> bool:
        if self.access is not None:
            return self.access.is_expired(self.now)
        return self.refresh.is_expired()  # type: ignore[union-attr]

    def is_revoked(self) -> bool:
        if self.access is not None:
            return self.access.is_revoked()
        return self.refresh.is_revoked() or self.refresh.rotated_at is not None  # type: ignore[union-attr]


def serves(client: Client, audiences: set[str]) -> bool:
    """Whether ``client`` is registered as the resource server of one of ``audiences``; never
    of Vigil's own URLs, whatever a row written behind the admin says (``clients.audiences``)."""
    served = {r for r in listed(client.served_resources) if servable(r)}
    return bool(served & audiences)


def may_introspect(token: FoundToken, client: Client) -> bool:
    """RFC 7662 §4: the token's own client, or the resource server of its audience."""
    return token.check_client(client) or serves(client, token.audiences())


def find_token(token_string: str, hint: str | None, client: Client) -> FoundToken | None:
    """The token, in one query; the authenticated ``client`` is not read again when the
    token is its own."""
    if not isinstance(token_string, str) or not token_string:
        return None
    order = ["refresh_token", "access_token"] if hint == "refresh_token" else ["access_token", "refresh_token"]
    for kind in order:
        found = _find_access(token_string) if kind == "access_token" else _find_refresh(token_string, client)
        if found is not None:
            return found
    return None


def _find_access(token_string: str) -> FoundToken | None:
    try:
        claims = jwt_tokens.verify(token_string, typ="at+jwt", check_exp=False)
    except jwt_tokens.TokenInvalid:
        return None
    record_ = (
        AccessToken.objects.select_related("client", "user", "session__client")
        .filter(jti=str(claims.get("jti"))).first()
    )
    return FoundToken("access_token", access=record_, claims=claims) if record_ else None


def _find_refresh(token_string: str, client: Client) -> FoundToken | None:
    token = refresh.find_refresh_token(token_string, client)
    return FoundToken("refresh_token", refresh=token) if token else None


class IntrospectionEndpoint(_IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CONFIDENTIAL_METHODS
    SINGLE_VALUED = ("token", "token_type_hint")  # RFC 6749 §3.2 (``AuthorizationServer.create_endpoint_response``)

    def check_params(self, request: Any, client: Client) -> None:
        """RFC 7662 §2.1: the hint only orders the search, which covers every token type when
        it does not help, so a hint we do not know is ignored (Authlib answers RFC 7009's
        ``unsupported_token_type``, which RFC 7662 does not define)."""
        if "token" not in request.form:
            raise InvalidRequestError("The 'token' parameter is required.")

    def authenticate_token(self, request: Any, client: Client) -> FoundToken | None:
        """Authlib's, with the authenticated client handed to the look-up. One of our JWT access
        tokens, on PostgreSQL, is looked up and recorded in one statement (``introspect_jwt``)."""
        self.check_params(request, client)
        claims = introspect_jwt.applies(request.form["token"], client)
        if claims is not None:
            return self._look_up_and_record(request, client, claims)
        token = find_token(request.form["token"], request.form.get("token_type_hint"), client)
        return token if token is not None and self.check_permission(token, client, request) else None

    def _look_up_and_record(self, request: Any, client: Client, claims: dict[str, Any]) -> FoundToken | None:
        now = timezone.now()
        access, outcome = introspect_jwt.look_up_and_record(
            claims, client, serves(client, audiences(claims)), getattr(request, "django_request", None), now
        )
        request.context.introspection_recorded = True
        if access is None or outcome == Outcome.DENIED:
            return None
        return FoundToken("access_token", access=access, claims=claims, now=now)

    def check_permission(self, token: FoundToken, client: Client, request: Any) -> bool:
        """RFC 7662 §4; a refused look-up is remembered for the event."""
        allowed = not client.is_public and may_introspect(token, client)
        if not allowed:
            request.context.introspection_refused = token
        return allowed

    def introspect_token(self, token: FoundToken) -> dict[str, Any]:
        if token.access is not None and token.claims is not None:
            claims = token.claims
            body: dict[str, Any] = {
                k: claims[k] for k in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope") if k in claims
            }
            if "cnf" in claims:
                body["cnf"] = claims["cnf"]
            body["token_type"] = "DPoP" if "cnf" in claims else "Bearer"
            if token.access.user is not None:
                body["username"] = token.access.user.get_username()
            if "sid" in claims:
                body["sid"] = claims["sid"]
            for name in ("device_attested", "device_health"):  # docs/unattested-devices.md, device-health.md
                if name in claims:
                    body[name] = claims[name]
            return body
        refresh = token.refresh
        assert refresh is not None
        session = refresh.session
        body = {
            "scope": refresh.scope,
            "client_id": session.client.client_id,
            "sub": session.user.get_user_id(),
            "username": session.user.get_username(),
            "exp": int(refresh.expires_at.timestamp()),
            "iat": int(refresh.created_at.timestamp()),
            "sid": session.sid,
            "token_type": "refresh_token",
        }
        device = session.device if session.device_id is not None else None
        if device is not None and not device.attested:
            body["device_attested"] = False
        return body

    def create_endpoint_response(self, request: Any) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        status, body, headers = super().create_endpoint_response(request)
        refused: FoundToken | None = request.context.introspection_refused
        if request.context.introspection_recorded:
            pass  # recorded with the look-up
        elif refused is not None:
            record(
                EventType.OAUTH_INTROSPECTION,
                outcome=Outcome.DENIED,
                reason="not_token_audience",
                client_id=request.client.client_id,
                request=getattr(request, "django_request", None),
                token_client_id=refused.client.client_id,
                token_type=refused.kind,
            )
        else:
            record(
                EventType.OAUTH_INTROSPECTION,
                outcome=Outcome.SUCCESS if body.get("active") else Outcome.INFO,
                reason="active" if body.get("active") else "inactive",
                client_id=request.client.client_id,
                request=getattr(request, "django_request", None),
            )
        return status, body, [*headers, ("Cache-Control", "no-store")]


class RevocationEndpoint(_RevocationEndpoint):
    CLIENT_AUTH_METHODS = [*CONFIDENTIAL_METHODS, "none"]
    SINGLE_VALUED = ("token", "token_type_hint")

    def check_params(self, request: Any, client: Client) -> None:
        """RFC 7009 §2.1: the hint only orders the search, which "MUST extend" to every token
        type when the hint does not find the token, so a hint we do not know is ignored.
        Authlib refuses it as ``unsupported_token_type`` with a 401 (no challenge), and the
        token the client meant to end stayed live."""
        if "token" not in request.form:
            raise InvalidRequestError("The 'token' parameter is required.")

    def authenticate_token(self, request: Any, client: Client) -> FoundToken | None:
        """RFC 7009 §2.1: an unknown token is a 200 with nothing to do (§2.2); another
        client's token is refused, and nothing is revoked."""
        self.check_params(request, client)
        token = find_token(request.form["token"], request.form.get("token_type_hint"), client)
        if token is not None and not token.check_client(client):
            record(
                EventType.OAUTH_REVOCATION,
                outcome=Outcome.DENIED,
                reason="not_token_client",
                client_id=client.client_id,
                request=getattr(request, "django_request", None),
                token_client_id=token.client.client_id,
                token_type=token.kind,
            )
            raise UnauthorizedClientError("The token was not issued to this client (RFC 7009 section 2.1).")
        return token

    def revoke_token(self, token: FoundToken, request: Any) -> None:
        now = timezone.now()
        if token.refresh is not None:
            # RFC 7009 §2.1: revoking a refresh token revokes its grant (the whole family).
            token_flows.revoke_session(token.refresh.session, Reason.REVOKED_BY_CLIENT, now=now)
        elif token.access is not None:
            revoke_access_token(token.access, now=now)
        record(
            EventType.OAUTH_REVOCATION,
            reason=token.kind,
            client_id=token.client.client_id,
            request=getattr(request, "django_request", None),
        )
