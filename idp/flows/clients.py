"""Registering clients (used by the admin, `create_client` and the demo bootstrap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from ..crypto import generate_token
from ..events import record
from ..models import AuthMethod, Client, ClientType
from ..redirects import validate_redirect_uri_for_registration

DEFAULT_SCOPES = ["openid", "profile", "email", "offline_access"]
PUBLIC_GRANTS = ["authorization_code", "refresh_token"]
CONFIDENTIAL_GRANTS = ["authorization_code", "refresh_token", "client_credentials"]


class ClientRegistrationError(ValueError):
    """The requested client configuration is not allowed."""


@dataclass
class RegisteredClient:
    client: Client
    secret: str | None


def register_client(
    *,
    name: str,
    public: bool,
    redirect_uris: list[str],
    scopes: list[str] | None = None,
    grant_types: list[str] | None = None,
    first_party: bool = False,
    post_logout_redirect_uris: list[str] | None = None,
    auth_method: str | None = None,
    jwks: dict[str, Any] | None = None,
    client_id: str | None = None,
    allowed_audiences: list[str] | None = None,
    signing_alg: str = "ES256",
    require_mfa: bool = False,
    require_dpop: bool = False,
) -> RegisteredClient:
    for uri in [*redirect_uris, *(post_logout_redirect_uris or [])]:
        problem = validate_redirect_uri_for_registration(uri, public)
        if problem:
            raise ClientRegistrationError(f"{uri}: {problem}")
    grants = grant_types or (PUBLIC_GRANTS if public else CONFIDENTIAL_GRANTS)
    if public and "client_credentials" in grants:
        raise ClientRegistrationError("public clients cannot use client_credentials")
    if "authorization_code" in grants and not redirect_uris:
        raise ClientRegistrationError("authorization_code needs at least one redirect URI")
    method = auth_method or (AuthMethod.NONE if public else AuthMethod.SECRET_BASIC)
    if public != (method == AuthMethod.NONE):
        raise ClientRegistrationError("public clients use auth method none; confidential ones must authenticate")
    if method == AuthMethod.PRIVATE_KEY_JWT and not (jwks or {}).get("keys"):
        raise ClientRegistrationError("private_key_jwt needs the client's public JWKS")
    secret = None if method in (AuthMethod.NONE, AuthMethod.PRIVATE_KEY_JWT) else generate_token(32)
    with transaction.atomic():
        client = Client(
            client_id=client_id or generate_token(18),
            name=name,
            client_type=ClientType.PUBLIC if public else ClientType.CONFIDENTIAL,
            token_endpoint_auth_method=method,
            jwks=jwks or {},
            redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout_redirect_uris or []),
            allowed_scopes=list(scopes or DEFAULT_SCOPES),
            grant_types=list(grants),
            allowed_audiences=list(allowed_audiences or []),
            first_party=first_party,
            require_pkce=True,
            require_mfa=require_mfa,
            require_dpop=require_dpop,
            signing_alg=signing_alg,
        )
        if secret:
            client.set_secret(secret)
        client.save()
    record("client.registered", client_id=client.client_id, public=public, grant_types=grants)
    return RegisteredClient(client, secret)


def rotate_secret(client: Client) -> str:
    secret = generate_token(32)
    client.set_secret(secret)
    client.save(update_fields=["secret_hash"])
    record("client.secret_rotated", client_id=client.client_id)
    return secret
