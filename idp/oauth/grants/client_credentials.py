"""Client credentials grant (RFC 6749 §4.4) for confidential services; no user, no refresh;
as hooks of Authlib's own grant."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from django.utils import timezone

from core.events import EventType, record

from .. import resources
from ..dpop_binding import check_token_request
from .base import VigilGrantMixin

USER_ONLY_SCOPES = {"openid", "offline_access", "profile", "email"}


class ClientCredentialsGrant(VigilGrantMixin, grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def granted_scope(self) -> str:
        client = self.request.client
        requested = self.request.payload.scope
        allowed = [s for s in client.allowed_scopes if s not in USER_ONLY_SCOPES]
        if not requested:
            return " ".join(allowed)
        return " ".join(s for s in requested.split() if s in allowed)

    def check_proofs(self) -> None:
        """Before issuing: the resources (RFC 8707) and the DPoP proof (RFC 9449 §5)."""
        scope = self.granted_scope()
        self.narrow_resources(resources.requestable(self.request.client.allowed_audiences, scope), scope)
        check_token_request(self)

    def generate_token(self, user: Any = None, scope: str | None = None, grant_type: str | None = None,
                       expires_in: int | None = None, include_refresh_token: bool = False) -> dict[str, Any]:
        """Authlib hook: issue the access token of the granted scope and record it."""
        issued = self.issue_tokens(session=None, scope=self.granted_scope(), now=timezone.now(), with_refresh=False)
        record(
            EventType.OAUTH_TOKEN_ISSUED,
            client_id=self.request.client.client_id,
            request=self.request.django_request,
            grant_type="client_credentials",
            jti=issued.jti,
        )
        return issued.as_response()
