"""The one Authlib ``AuthorizationServer`` of Vigil, and how it talks to Django.

Grants, endpoints and client-authentication methods are registered here; storage hooks
are short calls into ``sessions`` flows. Every error response is also a security event.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from authlib.integrations.django_oauth2.requests import DjangoJsonRequest, DjangoOAuth2Request
from authlib.oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from django.http import HttpRequest, HttpResponse

from clients.models import Client
from core import config_cache
from core.app_settings import app_settings
from core.events import EventType, Outcome, record
from core.policy import KeptAfterRollback
from core.text import storable_text

from .client_auth import ClientAuthenticator
from .context import RequestContext
from .endpoints import IntrospectionEndpoint, RevocationEndpoint
from .grants.authorization_code import AuthorizationCodeGrant, OpenIDCode, S256CodeChallenge
from .grants.client_credentials import ClientCredentialsGrant
from .grants.device_code import DeviceAuthorizationEndpoint, DeviceCodeGrant
from .grants.refresh_token import RefreshTokenGrant
from .grants.token_exchange import TokenExchangeGrant
from .http_headers import NO_STORE


class VigilOAuth2Request(DjangoOAuth2Request):
    """Authlib's Django request plus its typed per-request state (``idp.oauth.context``)."""

    def __init__(self, request: HttpRequest):
        super().__init__(request)
        self.django_request = request
        self.context = RequestContext()


#: Token-request parameters that may repeat: RFC 8707 §2 ``resource``, RFC 8693 §2.1 ``audience``.
REPEATABLE = frozenset({"resource", "audience"})


def token_request_problem(datalist: dict[str, list[str]]) -> str:
    """What breaks RFC 6749's rules for every token request, or ""."""
    if not any(datalist.get("grant_type", [])):
        return "The grant_type parameter is required (RFC 6749 section 4.1.3)."
    return repeated_parameter_problem(datalist)


def repeated_parameter_problem(datalist: dict[str, list[str]], only: Collection[str] | None = None) -> str:
    """RFC 6749 §3.2 (and RFC 7009 §2.1, RFC 7662 §2.1, RFC 8628 §3.1, which build on it): no
    parameter appears twice, but ``resource`` (RFC 8707 §2) and ``audience`` (RFC 8693 §2.1);
    "" when none does. ``only``: the parameters judged (an endpoint's own; §3.1 ignores others)."""
    repeated = sorted(name for name, values in datalist.items()
                      if len(values) > 1 and name not in REPEATABLE and (only is None or name in only))
    if repeated:
        return f"The {repeated[0][:40]} parameter is repeated (RFC 6749 section 3.2)."
    return ""


def active_client(client_id: str) -> Client | None:
    """The active client of that id, from this process's copy while no client changed."""
    return config_cache.cached(
        ("client", client_id), lambda: Client.objects.active().filter(client_id=client_id).first()
    )


class AuthorizationServer(_AuthorizationServer):
    def __init__(self) -> None:
        super().__init__(scopes_supported=app_settings.SCOPES_SUPPORTED)
        self._client_auth = ClientAuthenticator(self.query_client)

    # --- storage --------------------------------------------------------------------------
    def query_client(self, client_id: str) -> Client | None:
        if not storable_text(client_id, 100):
            return None
        return active_client(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Tokens are persisted by the grants' flows as they are issued."""

    def validate_requested_scope(self, scope: str | None) -> None:
        # Unknown scopes are dropped per client (get_allowed_scope), not refused.
        return None

    def create_token_response(self, request: Any = None) -> HttpResponse:
        """Authlib's, after RFC 6749's request-wide rules, which it leaves to the grants: a
        request names its ``grant_type`` (an ``invalid_request`` when missing, not
        ``unsupported_grant_type``), and no parameter appears twice (§3.2), but the ones
        their RFCs let repeat."""
        oauth_request = self.create_oauth2_request(request)
        problem = token_request_problem(oauth_request.payload.datalist)
        if problem:
            return self.handle_error_response(oauth_request, InvalidRequestError(problem))
        return super().create_token_response(oauth_request)

    def create_endpoint_response(self, name: str, request: Any = None) -> HttpResponse:
        """Authlib's, after RFC 6749 §3.2 for the introspection, revocation and device
        authorization endpoints too: with ``token=A&token=B`` Django hands Authlib the last
        value, so a revocation answered 200 could leave the token the client named first live.
        Each endpoint names its own parameters (``SINGLE_VALUED``); credentials are the
        authenticator's, unrecognised ones are ignored (§3.1)."""
        oauth_request = self.create_oauth2_request(request)
        own = {p for endpoint in self._endpoints.get(name, []) for p in getattr(endpoint, "SINGLE_VALUED", ())}
        problem = repeated_parameter_problem(oauth_request.payload.datalist, own)
        if problem:
            return self.handle_error_response(oauth_request, InvalidRequestError(problem))
        return super().create_endpoint_response(name, oauth_request)

    # --- Django glue ----------------------------------------------------------------------
    def create_oauth2_request(self, request: Any) -> VigilOAuth2Request:
        if isinstance(request, VigilOAuth2Request):
            return request
        return VigilOAuth2Request(request)

    def create_json_request(self, request: HttpRequest) -> DjangoJsonRequest:
        return DjangoJsonRequest(request)

    def handle_response(self, status_code: int, payload: Any, headers: list[tuple[str, str]]) -> HttpResponse:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        response = HttpResponse(payload, status=status_code)
        for key, value in headers:
            response[key] = value
        return response

    def handle_error_response(self, request: Any, error: OAuth2Error) -> HttpResponse:
        """Record the error, run what a refusal keeps after its rollback, render (which writes nothing)."""
        if isinstance(error, KeptAfterRollback):
            error.run_after_rollback()
        django_request = getattr(request, "django_request", None)
        auth_failure = getattr(error, "auth_failure", None)
        client_id = getattr(error, "auth_client_id", "") or getattr(getattr(request, "payload", None), "client_id", "")
        record(
            EventType.OAUTH_ERROR,
            outcome=Outcome.FAILURE,
            reason=error.error or "",
            client_id=str(client_id or "")[:100],
            request=django_request,
            description=error.description,
            endpoint=getattr(django_request, "path", ""),
            **({"auth_failure": auth_failure.value} if auth_failure is not None else {}),
        )
        response = super().handle_error_response(request, error)
        if response.status_code != 302:
            for key, value in NO_STORE:
                response[key] = value
        return response

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


def build_server() -> AuthorizationServer:
    server = AuthorizationServer()
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True), OpenIDCode()])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(TokenExchangeGrant)
    server.register_grant(DeviceCodeGrant)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(DeviceAuthorizationEndpoint)
    return server


_server: AuthorizationServer | None = None


def get_server() -> AuthorizationServer:
    """The process-wide server (grant registry only; holds no request state)."""
    global _server
    if _server is None:
        _server = build_server()
    return _server
