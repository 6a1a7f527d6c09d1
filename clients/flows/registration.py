"""Registering clients (used by the admin, `create_client` and the demo bootstrap), and the
rules a client configuration must meet wherever it is made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization

from clients.audiences import first_problem as audience_problem
from clients.models import (
    CONFIDENTIAL_ONLY_GRANTS,
    HTTPS_ONLY,
    SECRET_METHODS,
    AuthMethod,
    Client,
    ClientProfile,
    ClientType,
    default_signing_alg,
)
from clients.profiles import profile_problem, request_uris_problem
from core.app_settings import app_settings
from core.crypto import generate_token
from core.events import EventType, record
from core.policy import GrantType

from ..redirects import validate_redirect_uri_for_registration
from .branding import scope_descriptions_problem

DEFAULT_SCOPES = ["openid", "profile", "email", "offline_access"]
PUBLIC_GRANTS = [GrantType.AUTHORIZATION_CODE.value, GrantType.REFRESH_TOKEN.value]
CONFIDENTIAL_GRANTS = [*PUBLIC_GRANTS, GrantType.CLIENT_CREDENTIALS.value]


class ClientRegistrationError(ValueError):
    """The requested client configuration is not allowed."""


@dataclass(frozen=True)
class Brand:
    """What people see of a client on the sign-in pages (``clients.branding``)."""

    display_name: str = ""
    privacy_policy_url: str = ""
    terms_url: str = ""
    scope_descriptions: dict[str, str] = field(default_factory=dict)

    def problem(self, allowed_scopes: list[str]) -> str | None:
        if len(self.display_name) > 100:
            return "the display name is longer than 100 characters"
        for label, url in (("privacy policy", self.privacy_policy_url), ("terms", self.terms_url)):
            try:
                if url:
                    HTTPS_ONLY(url)
            except ValidationError:
                return f"the {label} URL must be an https URL"
        problem = scope_descriptions_problem(self.scope_descriptions, allowed_scopes)
        return f"scope descriptions: {problem}" if problem else None


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
    auth_methods: Sequence[str] | None = None,
    jwks: dict[str, Any] | None = None,
    client_id: str | None = None,
    allowed_audiences: list[str] | None = None,
    served_resources: list[str] | None = None,
    signing_alg: str | None = None,
    require_mfa: bool = False,
    require_dpop: bool = False,
    require_pkce: bool = True,
    backchannel_logout_uri: str = "",
    backchannel_logout_session_required: bool = False,
    token_exchange_audiences: list[str] | None = None,
    profile: str = ClientProfile.STANDARD,
    require_par: bool = False,
    require_signed_request_object: bool = False,
    request_uris: list[str] | None = None,
    brand: Brand | None = None,
) -> RegisteredClient:
    """Register a client. ``auth_methods`` lists what it may
    authenticate with, the first being its registered ``token_endpoint_auth_method``;
    without one a confidential client gets client_secret_basic and client_secret_post (one
    secret), a public client ``none``. ``signing_alg`` defaults to ``IDP_SIGNING_ALG`` (ES256
    under the FAPI 2.0 ``profile``, whose rules are in ``clients.profiles``)."""
    for uri in [*redirect_uris, *(post_logout_redirect_uris or [])]:
        problem = validate_redirect_uri_for_registration(uri, public)
        if problem:
            raise ClientRegistrationError(f"{uri}: {problem}")
    grants = grant_types or (PUBLIC_GRANTS if public else CONFIDENTIAL_GRANTS)
    if public and CONFIDENTIAL_ONLY_GRANTS & set(grants):
        raise ClientRegistrationError("public clients cannot use client_credentials or token exchange")
    if public and token_exchange_audiences:  # as the admin refuses them
        raise ClientRegistrationError("only confidential clients exchange tokens (RFC 8693)")
    if GrantType.AUTHORIZATION_CODE in grants and not redirect_uris:
        raise ClientRegistrationError("authorization_code needs at least one redirect URI")
    methods = resolve_auth_methods(public, auth_methods, jwks)
    alg = signing_alg or ("ES256" if profile == ClientProfile.FAPI2 else default_signing_alg())
    allowed_scopes = list(scopes or DEFAULT_SCOPES)
    client_id = client_id or generate_token(18)
    problem = (
        signing_alg_problem(alg)
        or profile_problem(profile, public, methods, alg, redirect_uris)
        or request_uris_problem(request_uris or [])
        or pkce_waiver_problem(public, require_pkce, allowed_scopes)
        or served_resources_problem(served_resources or [])
        or served_resources_problem(token_exchange_audiences or [])
        or audience_problem(client_id, list(served_resources or []), list(token_exchange_audiences or []))
        or backchannel_logout_uri_problem(backchannel_logout_uri)
    )
    brand = brand or Brand()
    problem = problem or brand.problem(allowed_scopes)
    if problem:
        raise ClientRegistrationError(problem)
    secret = generate_token(32) if any(m in SECRET_METHODS for m in methods) else None
    with transaction.atomic():
        client = Client(
            client_id=client_id,
            name=name,
            client_type=ClientType.PUBLIC if public else ClientType.CONFIDENTIAL,
            token_endpoint_auth_method=methods[0],
            additional_auth_methods=methods[1:],
            jwks=jwks or {},
            redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout_redirect_uris or []),
            allowed_scopes=allowed_scopes,
            grant_types=list(grants),
            allowed_audiences=list(allowed_audiences or []),
            served_resources=list(served_resources or []),
            token_exchange_audiences=list(token_exchange_audiences or []),
            backchannel_logout_uri=backchannel_logout_uri,
            backchannel_logout_session_required=backchannel_logout_session_required,
            first_party=first_party,
            require_pkce=require_pkce,
            require_mfa=require_mfa,
            require_dpop=require_dpop,
            signing_alg=alg,
            profile=profile,
            require_pushed_authorization_requests=require_par,
            require_signed_request_object=require_signed_request_object,
            request_uris=list(request_uris or []),
            display_name=brand.display_name,
            privacy_policy_url=brand.privacy_policy_url,
            terms_url=brand.terms_url,
            scope_descriptions=dict(brand.scope_descriptions),
        )
        if secret:
            client.set_secret(secret)
        client.save()
    record(
        EventType.CLIENT_REGISTERED,
        client_id=client.client_id,
        public=public,
        grant_types=grants,
        auth_methods=methods,
        signing_alg=alg,
        require_pkce=require_pkce,
        profile=profile,
    )
    return RegisteredClient(client, secret)


def resolve_auth_methods(public: bool, requested: Sequence[str] | None, jwks: dict[str, Any] | None) -> list[str]:
    """The client's methods, first the registered one (RFC 7591 §2 ``token_endpoint_auth_method``).

    A public client uses ``none`` only; a confidential one never does (RFC 6749 §3.2.1) and
    by default accepts its secret both ways, as Keycloak and django-oauth-toolkit do.
    """
    methods = list(dict.fromkeys(requested or [])) or (
        [AuthMethod.NONE] if public else [AuthMethod.SECRET_BASIC, AuthMethod.SECRET_POST]
    )
    unknown = [m for m in methods if m not in AuthMethod.values]
    if unknown:
        raise ClientRegistrationError(f"unknown auth method {unknown[0]!r}; use {', '.join(AuthMethod.values)}")
    if public != (AuthMethod.NONE in methods) or (public and len(methods) > 1):
        raise ClientRegistrationError("public clients use auth method none; confidential ones must authenticate")
    problem = jwks_problem(jwks) if AuthMethod.PRIVATE_KEY_JWT in methods else None
    if problem:
        raise ClientRegistrationError(f"private_key_jwt needs the client's public JWKS: {problem}")
    return [str(m) for m in methods]


def jwks_problem(jwks: dict[str, Any] | None) -> str | None:
    """Why a JWKS cannot verify ``private_key_jwt`` assertions, or ``None``."""
    if not isinstance(jwks, dict) or not jwks.get("keys"):
        return "no keys"
    try:
        keys = KeySet.import_key_set(cast(KeySetSerialization, jwks))  # validated by the import
    except (JoseError, ValueError, TypeError, KeyError) as error:
        return f"unreadable ({error})"
    if any(key.is_private for key in keys):
        return "it holds a private key; register only the public keys"
    return None


def signing_alg_problem(alg: str) -> str | None:
    if alg not in app_settings.SUPPORTED_SIGNING_ALGS:
        return f"signing alg {alg!r} is not one of {', '.join(app_settings.SUPPORTED_SIGNING_ALGS)}"
    return None


def pkce_waiver_problem(public: bool, require_pkce: bool, scopes: list[str]) -> str | None:
    """RFC 9700 §2.1.1: only a confidential OpenID client may use ``nonce`` instead of PKCE."""
    if require_pkce:
        return None
    if public:
        return "public clients always use PKCE"
    if "openid" not in scopes:
        return "only an OpenID client (scope openid) may go without PKCE: it must send a nonce instead"
    return None


def served_resources_problem(resources: list[str]) -> str | None:
    for resource in resources:
        if not isinstance(resource, str) or not resource or len(resource) > 2000 or any(c.isspace() for c in resource):
            return f"served resource {resource!r} must be a URI or client_id without spaces"
    return None


_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def backchannel_logout_uri_problem(uri: str) -> str | None:
    """Back-Channel Logout 1.0 §2.2: an absolute URI without a fragment; we also want https,
    except on a loopback address (a receiver on the same machine, development and tests)."""
    if not uri:
        return None
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
    except ValueError:
        return f"backchannel_logout_uri {uri!r} is not a URL"
    if parts.fragment or not host or parts.scheme not in {"https", "http"} or len(uri) > 2000:
        return "backchannel_logout_uri must be an absolute https URL without a fragment"
    if parts.scheme == "http" and host not in _LOOPBACK_HOSTS:
        return "backchannel_logout_uri must use https (http only on a loopback address)"
    return None


def rotate_secret(client: Client, request: HttpRequest | None = None, **details: Any) -> str:
    """A new secret (returned once, stored as a hash); recorded with who asked (``details``)."""
    secret = generate_token(32)
    client.set_secret(secret)
    client.save(update_fields=["secret_hash"])
    record(EventType.CLIENT_SECRET_ROTATED, client_id=client.client_id, request=request, **details)
    return secret
