"""Device authorization grant (RFC 8628) for TVs and command-line tools: the device
authorization endpoint (§3.1-3.2) on Authlib's, and the device code grant (§3.4-3.5).

The lifecycle (codes, the user's decision, polling pace, single redemption) lives in
``idp.flows.device_authorization``; these classes translate it into RFC 6749 §5 responses.
The user approves on ``/device`` (``idp.device_views``), signed in with the client's
required ``acr``. A poll may narrow the authorization's resources (RFC 8707 §2.2): the access
token is for those named, the family (its refresh tokens) keeps them all.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc8628 import AuthorizationPendingError, ExpiredTokenError, SlowDownError
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint as _DeviceAuthorizationEndpoint
from django.utils import timezone

from core.app_settings import app_settings
from core.crypto import first_refresh_token
from core.events import EventType, Outcome, client_ip, record
from core.policy import GrantType
from sessions.flows.device_binding import client_requires_attestation
from sessions.flows.tokens import IssuedTokens
from sessions.models import DeviceSession

from ...flows import device_authorization as flow
from ...flows import request_rates
from .. import resources
from ..dpop_binding import check_token_request
from ..errors import InvalidTargetError
from ..http_headers import NO_STORE
from .base import TOKEN_AUTH_METHODS, VigilGrantMixin

DEVICE_CODE = GrantType.DEVICE_CODE

_POLL_ERRORS: dict[flow.PollOutcome, Any] = {
    flow.PollOutcome.PENDING: AuthorizationPendingError,
    flow.PollOutcome.SLOW_DOWN: SlowDownError,
    flow.PollOutcome.EXPIRED: ExpiredTokenError,
    flow.PollOutcome.DENIED: AccessDeniedError,
}


def refuse_unless_allowed(client: Any, django_request: Any) -> None:
    """The client is registered for the grant, and does not require device attestation: a
    device grant binds no attested device, so it would mint that client's tokens past its
    attestation and device-health policy (docs/device-health.md). Refused at the device
    authorization endpoint and again at the token endpoint (a grant added after the start)."""
    if not client.check_grant_type(DEVICE_CODE):
        raise UnauthorizedClientError("This client is not registered for the device authorization grant.")
    if client_requires_attestation(client):
        record(EventType.OAUTH_DEVICE_AUTHORIZATION, outcome=Outcome.DENIED, reason="attestation_required",
               client_id=client.client_id, request=django_request)
        raise UnauthorizedClientError("This client requires device attestation: the device grant cannot attest.")


class DeviceAuthorizationEndpoint(_DeviceAuthorizationEndpoint):
    """RFC 8628 §3.1: the client (authenticated, or identified for a public one) asks for a
    device code; §3.2: the response, with ``verification_uri_complete``. A public client's
    requests are counted per address first (``idp.flows.request_rates``): 429 ``slow_down``
    beyond its rate, with no row stored."""

    CLIENT_AUTH_METHODS = TOKEN_AUTH_METHODS
    SINGLE_VALUED = ("scope",)  # RFC 6749 §3.2; ``resource`` repeats (RFC 8707 §2)

    def create_endpoint_response(self, request: Any) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        client = self.authenticate_client(request)
        request_rates.admit(request_rates.Endpoint.DEVICE_AUTHORIZATION, client, request.django_request)
        refuse_unless_allowed(client, request.django_request)
        scope = client.get_allowed_scope(request.payload.scope or " ".join(client.allowed_scopes))
        resource = list(request.payload.datalist.get("resource", []))
        if not set(resource) <= set(resources.requestable(client.allowed_audiences, scope)):
            raise InvalidTargetError("The requested resource is not allowed for this client.")
        started = flow.start(client, scope=scope, resource=resource, now=timezone.now())
        record(EventType.OAUTH_DEVICE_AUTHORIZATION, reason="started", client_id=client.client_id,
               request=request.django_request, scope=scope)
        uri = self.get_verification_uri()
        body = {
            "device_code": started.device_code,
            "user_code": started.user_code,
            "verification_uri": uri,
            "verification_uri_complete": f"{uri}?user_code={started.user_code}",
            "expires_in": app_settings.DEVICE_CODE_LIFETIME,
            "interval": started.authorization.interval,
        }
        return 200, body, [("Content-Type", "application/json"), *NO_STORE]

    def get_verification_uri(self) -> str:
        return f"{app_settings.ISSUER}/device"


class DeviceCodeGrant(VigilGrantMixin, BaseGrant, TokenEndpointMixin):
    """RFC 8628 §3.4: the device polls the token endpoint with its device code."""

    GRANT_TYPE = DEVICE_CODE
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def validate_token_request(self) -> None:
        if not self.request.payload.data.get("device_code"):
            raise InvalidRequestError("device_code is required.")
        client = self.authenticate_token_endpoint_client()
        refuse_unless_allowed(client, self.request.django_request)
        self.request.client = client

    def check_proofs(self) -> None:
        """Before the poll: the resources (RFC 8707 §2.2), then the DPoP proof (RFC 9449 §5),
        which binds the access token (and a public client's family).

        A ``resource`` not among the authorization's (not granted, malformed, or any when none
        was) is ``invalid_target`` whatever the code's state: request errors come before RFC 8628
        §3.5's answers, so a pending code with one is told ``invalid_target``, not
        ``authorization_pending``, and so is an approved, denied, expired or redeemed one. But
        the refusal still counts for the pace (``flow.count_refused_poll``): ``last_polled_at``
        moves, and one sooner than the interval on a pending code is ``slow_down`` (the interval
        grows), as any poll is, so refusals are no way around §3.5's rate limit. Nothing else
        changes: the code is not redeemed or denied, and the DPoP proof is not spent. An unknown
        code (or another client's) is left to the poll: ``invalid_grant``."""
        self._narrow_resources()
        check_token_request(self)

    def _narrow_resources(self) -> None:
        """The shared rule (``narrow_resources``) against the resources the device asked for at
        /device_authorization; without ``resource`` no lookup, and the token is for them all."""
        if not self.request.payload.datalist.get("resource"):
            return
        device_code, client = self.request.payload.data["device_code"], self.request.client
        granted = flow.granted_resources(device_code, client)
        if granted is None:
            return
        try:
            self.narrow_resources(granted.resources, granted.scope)
        except InvalidTargetError:
            if flow.count_refused_poll(device_code, client, now=timezone.now()) is flow.PollOutcome.SLOW_DOWN:
                raise SlowDownError() from None
            raise

    @hooked
    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """RFC 8628 §3.5 through ``flow.poll``. The family's first refresh token is derived from
        the device code (``first_refresh_token``, as from an authorization code), so the retry of
        a poll whose answer was lost is given it again (``flow.poll``, ``code_exchange``)."""
        client = self.request.client
        now = timezone.now()
        device_code = self.request.payload.data["device_code"]

        def issue(session: DeviceSession, *, refresh: bool = True) -> IssuedTokens:
            issued = self.issue_tokens(session=session, scope=session.scope, now=now, with_refresh=refresh,
                                       refresh_raw=first_refresh_token(device_code))
            return self.add_id_token(issued, session, issued.scope)

        # A token policy refusing the new family (risk) also denies the code (``flow.poll``);
        # refusing a retry ends the family it would have continued (``code_exchange``).
        polled = flow.poll(device_code, client, now=now, issue=issue, reissue=lambda s: issue(s, refresh=False),
                           ip=client_ip(self.request.django_request),
                           dpop_jkt=(self.context.dpop_jkt or "") if client.is_public else "",
                           proof_jkt=self.context.dpop_jkt or "", request=self.request.django_request)
        if polled.outcome in _POLL_ERRORS:
            raise _POLL_ERRORS[polled.outcome]()
        if polled.session is None or polled.issued is None:
            # RFC 8628 §3.5 has no code for these; RFC 6749 §5.2 invalid_grant: unknown, another
            # client's, or already redeemed and not a retry (reuse: what it issued is revoked).
            raise InvalidGrantError("The device code is invalid or was used already.")
        self.context.session = polled.session
        if polled.outcome is flow.PollOutcome.ISSUED:  # an answer given again is recorded oauth.code_retried
            record(EventType.OAUTH_TOKEN_ISSUED, user=polled.session.user, client_id=client.client_id,
                   session_id=polled.session.sid, request=self.request.django_request, grant_type="device_code",
                   jti=polled.issued.jti)
        return 200, polled.issued.as_response(), self.TOKEN_RESPONSE_HEADER
