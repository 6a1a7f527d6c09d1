"""Token exchange (RFC 8693) for relying services: a confidential client that received a
user's access token exchanges it for one aimed at a downstream audience.

What is checked, in order (each refusal is an ``oauth.token_exchange_refused`` event and an
RFC 8693 §2.2.2 error):

1. the client authenticates and is registered for the grant (RFC 8693 §2.1; confidential
   clients only);
2. ``subject_token_type`` is ``urn:ietf:params:oauth:token-type:access_token``, no
   ``actor_token`` (the authenticated client is the actor), ``requested_token_type`` (if
   sent) is an access token (§2.1);
3. the subject token is one of our access tokens, still active, of a user, and aimed at the
   requesting client (its ``aud`` names the client or a resource the client serves, never
   one of Vigil's own URLs: ``clients.audiences``): a service can only exchange what was sent
   to it (§2.1, "unacceptable based on policy");
4. a DPoP-bound subject token (``cnf.jkt``, RFC 9449 §6) needs a DPoP proof of that very key
   with the exchange; the new token is bound to it too;
5. every requested ``audience``/``resource`` is in the client's ``token_exchange_audiences``
   and allowed there (``clients.audiences``: not its own ``client_id``, none of Vigil's URLs
   but the userinfo endpoint) (``invalid_target``, §2.2.2), and at least one is named;
6. the requested ``scope`` is within the subject token's (``invalid_scope``: never wider).

The new token keeps the user's session (``sid``, ``acr``, ``auth_time``; revoking the
session revokes it), carries ``client_id`` of the exchanging service and the ``act`` claim
(§4.1) naming it, with any earlier actor nested inside. No refresh token is issued.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError, UnauthorizedClientError
from authlib.oauth2.rfc6749.hooks import hooked
from django.utils import timezone

from clients.audiences import exchangeable, servable
from core import jwt_tokens
from core.events import EventType, Outcome, record
from core.json_shapes import listed
from core.policy import GrantType
from sessions.models import AccessToken

from ..dpop_binding import check_token_request
from ..errors import InvalidTargetError
from .base import VigilGrantMixin

TOKEN_EXCHANGE = GrantType.TOKEN_EXCHANGE
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
#: Scopes that make no sense on a token for another service (no refresh, no ID token).
NOT_EXCHANGED = {"offline_access"}


class TokenExchangeGrant(VigilGrantMixin, BaseGrant, TokenEndpointMixin):
    GRANT_TYPE = TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    # --- validation ---------------------------------------------------------------------
    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        self.request.client = client
        if not client.check_grant_type(self.GRANT_TYPE):
            raise self._refused("grant_not_allowed", UnauthorizedClientError(
                "This client is not registered for token exchange."))
        self._check_parameters()
        self.request.subject = self._subject_token()
        self.request.exchange_scope = self._scope(self.request.subject)

    def _check_parameters(self) -> None:
        data = self.request.payload.data
        if not data.get("subject_token"):
            raise self._refused("missing_subject_token", InvalidRequestError("subject_token is required."))
        if data.get("subject_token_type") != ACCESS_TOKEN_TYPE:
            raise self._refused("unsupported_subject_token_type", InvalidRequestError(
                f"subject_token_type must be {ACCESS_TOKEN_TYPE}."))
        if data.get("actor_token") or data.get("actor_token_type"):
            raise self._refused("actor_token_unsupported", InvalidRequestError(
                "actor_token is not supported: the authenticated client is the actor."))
        if data.get("requested_token_type") not in (None, "", ACCESS_TOKEN_TYPE):
            raise self._refused("unsupported_requested_token_type", InvalidRequestError(
                f"Only {ACCESS_TOKEN_TYPE} can be requested."))

    def _subject_token(self) -> AccessToken:
        """The subject token's record, when it is ours, active (its user and clients too:
        ``AccessToken.is_active``), a user's and aimed at this client."""
        raw = self.request.payload.data["subject_token"]
        try:
            claims = jwt_tokens.verify(raw, typ="at+jwt")
        except jwt_tokens.TokenInvalid as exc:
            raise self._refused("subject_token_invalid", InvalidRequestError(
                "The subject_token is invalid or expired.")) from exc
        token = (AccessToken.objects.select_related("session__client", "user", "client")
                 .filter(jti=str(claims.get("jti"))).first())
        if token is None or not token.is_active(timezone.now()) or token.user is None or token.session is None:
            raise self._refused("subject_token_inactive", InvalidRequestError(
                "The subject_token is not an active access token of a user."))
        client = self.request.client
        aimed_at = {aud for aud in [client.client_id, *listed(client.served_resources)] if servable(aud)}
        if not aimed_at & set(token.audience):
            raise self._refused("subject_token_not_for_client", InvalidRequestError(
                "The subject_token was not issued for this client."))
        self.request.subject_claims = claims
        return token

    def _audiences(self) -> list[str]:
        """RFC 8693 §2.1 ``audience`` and ``resource``: every one allowed for this client."""
        datalist = self.request.payload.datalist
        requested = list(dict.fromkeys([*datalist.get("audience", []), *datalist.get("resource", [])]))
        if not requested:
            raise self._refused("audience_missing", InvalidTargetError(
                "Name the downstream service with audience or resource."))
        client = self.request.client
        allowed = {aud for aud in listed(client.token_exchange_audiences) if exchangeable(aud, client.client_id)}
        if not set(requested) <= allowed:
            raise self._refused("audience_not_allowed", InvalidTargetError(
                "This client may not exchange tokens for that audience."))
        return requested

    def _scope(self, subject: AccessToken) -> str:
        """Equal or narrower than the subject token's scope, never wider."""
        held = [s for s in subject.scope.split() if s not in NOT_EXCHANGED]
        requested = (self.request.payload.scope or "").split()
        if not requested:
            return " ".join(held)
        if not set(requested) <= set(held):
            raise self._refused("scope_widened", InvalidScopeError(
                "The requested scope is wider than the subject token's."))
        return " ".join(dict.fromkeys(requested))

    def check_proofs(self) -> None:
        """RFC 9449: a DPoP-bound subject token is exchanged only with a proof of its key."""
        cnf = self.request.subject_claims.get("cnf")
        bound = str(cnf.get("jkt") or "") if isinstance(cnf, dict) else ""
        try:
            check_token_request(self, bound_jkt=bound)
        except OAuth2Error:
            self._record_refusal("dpop_proof_required" if bound else "dpop_proof_invalid")
            raise
        self.context.resources = self._audiences()

    # --- issue --------------------------------------------------------------------------
    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        subject: AccessToken = self.request.subject
        issued = self.issue_tokens(session=subject.session, scope=self.request.exchange_scope, now=timezone.now(),
                                   with_refresh=False,
                                   claims={"act": self._act()})
        issued.extra["issued_token_type"] = ACCESS_TOKEN_TYPE
        record(EventType.OAUTH_TOKEN_ISSUED, user=subject.user, client_id=self.request.client.client_id,
               session_id=subject.session.sid if subject.session else "", request=self.request.django_request,
               grant_type="token_exchange", jti=issued.jti, subject_jti=subject.jti,
               audience=list(self.context.resources))
        return 200, issued.as_response(), self.TOKEN_RESPONSE_HEADER

    def _act(self) -> dict[str, Any]:
        """RFC 8693 §4.1: the current actor outermost, earlier ones nested."""
        act: dict[str, Any] = {"sub": self.request.client.client_id}
        prior = self.request.subject_claims.get("act")
        if isinstance(prior, dict):
            act["act"] = prior
        return act

    # --- refusals -----------------------------------------------------------------------
    def _record_refusal(self, reason: str) -> None:
        record(EventType.OAUTH_TOKEN_EXCHANGE_REFUSED, outcome=Outcome.DENIED, reason=reason,
               client_id=self.request.client.client_id, request=self.request.django_request)

    def _refused(self, reason: str, error: Exception) -> Exception:
        self._record_refusal(reason)
        return error
