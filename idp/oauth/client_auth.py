"""Client authentication methods beyond Authlib's built-ins: ``private_key_jwt`` (RFC 7523 §2.2,
OIDC Core §9), with audience = our issuer or token endpoint and ``jti`` replay refused via the
shared cache."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from django.core.cache import cache
from joserfc.jwk import KeySet

from ..app_settings import app_settings
from ..models import Client


class PrivateKeyJWT(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self) -> None:
        super().__init__(validate_jti=True, leeway=30)

    def get_audiences(self) -> list[str]:
        issuer = app_settings.ISSUER
        return [issuer, f"{issuer}/token", f"{issuer}/"]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        lifetime = app_settings.CLIENT_ASSERTION_MAX_AGE + 60
        return cache.add(f"vigil:client-assertion:{claims.get('iss')}:{jti}", 1, lifetime)

    def resolve_client_public_key(self, client: Client) -> KeySet:
        return KeySet.import_key_set(client.jwks or {"keys": []})

    def verify_claims(self, claims: Any) -> None:
        from authlib.oauth2.rfc6749.errors import InvalidClientError

        super().verify_claims(claims)
        iat, exp = claims.get("iat"), claims.get("exp")
        if isinstance(iat, int) and isinstance(exp, int) and exp - iat > app_settings.CLIENT_ASSERTION_MAX_AGE:
            raise InvalidClientError(description="Client assertion lives too long.")

    def authenticate_client(self, client: Client) -> Client | None:
        # The endpoint-specific check is done by Authlib's ClientAuthentication.
        return client
