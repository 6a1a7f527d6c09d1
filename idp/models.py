"""Provider storage: clients, signing keys, authorization codes, consents, security events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from . import crypto
from .redirects import redirect_uri_matches


class ClientType(models.TextChoices):
    PUBLIC = "public", "Public (mobile/native app, no secret)"
    CONFIDENTIAL = "confidential", "Confidential (server-side service)"


class AuthMethod(models.TextChoices):
    """Client authentication methods (RFC 7591 §2 names; OIDC Core §9)."""

    NONE = "none", "none (public client + PKCE)"
    SECRET_BASIC = "client_secret_basic", "client_secret_basic"
    SECRET_POST = "client_secret_post", "client_secret_post"
    PRIVATE_KEY_JWT = "private_key_jwt", "private_key_jwt"


SECRET_METHODS = frozenset({AuthMethod.SECRET_BASIC, AuthMethod.SECRET_POST})


class ClientEndpoint(models.TextChoices):
    """Endpoints where a client authenticates (Authlib's endpoint names)."""

    TOKEN = "token"
    INTROSPECTION = "introspection"
    REVOCATION = "revocation"
    USAGE = "usage"  # the relying services' usage reports (sessions/api/views.py)


def default_signing_alg() -> str:
    """``IDP_SIGNING_ALG`` (default RS256, OIDC Dynamic Client Registration §2's default)."""
    from .app_settings import app_settings

    return app_settings.SIGNING_ALG


class ClientQuerySet(models.QuerySet["Client"]):
    def active(self) -> ClientQuerySet:
        return self.filter(is_active=True)


class Client(models.Model):
    """A registered OAuth client (relying party). Implements Authlib's ``ClientMixin``."""

    client_id = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    client_type = models.CharField(max_length=20, choices=ClientType.choices)
    secret_hash = models.CharField(max_length=64, blank=True, help_text="HMAC-SHA256 of the client secret.")
    token_endpoint_auth_method = models.CharField(
        max_length=40, choices=AuthMethod.choices, help_text="The client's registered (first) authentication method."
    )
    additional_auth_methods = models.JSONField(
        default=list, blank=True,
        help_text="Further methods the client may also use, e.g. client_secret_post beside client_secret_basic "
        "(the same secret). Never 'none' for a confidential client.",
    )
    jwks = models.JSONField(default=dict, blank=True, help_text="Public keys for private_key_jwt.")
    redirect_uris = models.JSONField(default=list, blank=True)
    post_logout_redirect_uris = models.JSONField(default=list, blank=True)
    allowed_scopes = models.JSONField(default=list, help_text="Scopes this client may ever receive.")
    grant_types = models.JSONField(default=list)
    allowed_audiences = models.JSONField(
        default=list, blank=True, help_text="Resource indicators (RFC 8707) this client may request."
    )
    served_resources = models.JSONField(
        default=list, blank=True,
        help_text="Resources this client serves as a resource server (RFC 8707 URIs, or a client_id: the aud of that "
        "client's tokens without a resource): it may introspect access tokens whose aud names one (RFC 7662 §4).",
    )
    first_party = models.BooleanField(default=False, help_text="Skip the consent screen.")
    require_pkce = models.BooleanField(
        default=True,
        help_text="Always on for public clients. Off only for a confidential OpenID client that sends a nonce with "
        "scope openid instead (RFC 9700 §2.1.1), and only takes effect with IDP_REQUIRE_PKCE_FOR_ALL_CLIENTS off.",
    )
    require_mfa = models.BooleanField(default=False)
    require_dpop = models.BooleanField(
        default=False, help_text="Refuse token requests without a DPoP proof (RFC 9449); refresh tokens of "
        "public clients are DPoP-bound whenever a proof is sent."
    )
    signing_alg = models.CharField(
        max_length=10,
        default=default_signing_alg,
        choices=[("ES256", "ES256"), ("RS256", "RS256"), ("EdDSA", "EdDSA")],
        help_text="JWS algorithm of this client's ID and access tokens.",
    )
    access_token_lifetime = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds; default 300.")
    refresh_token_lifetime = models.PositiveIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ClientQuerySet.as_manager()

    class Meta:
        db_table = "idp_client"

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"

    # --- secrets -----------------------------------------------------------------------
    def set_secret(self, secret: str) -> None:
        self.secret_hash = crypto.keyed_hash(secret)

    @property
    def is_public(self) -> bool:
        return self.client_type == ClientType.PUBLIC

    # --- Authlib ClientMixin -------------------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Never guess: a missing redirect_uri is only accepted with exactly one registered.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.allowed_scopes)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return any(redirect_uri_matches(registered, redirect_uri) for registered in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.secret_hash or not client_secret:
            return False
        return crypto.keyed_hash_matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.endpoint_auth_methods(endpoint)

    # --- authentication methods ------------------------------------------------------------
    def auth_methods(self) -> list[str]:
        """Every registered method, the first one first."""
        methods = [self.token_endpoint_auth_method, *(self.additional_auth_methods or [])]
        return [str(m) for m in dict.fromkeys(methods) if m]

    def endpoint_auth_methods(self, endpoint: str) -> list[str]:
        """Methods this client may use at ``endpoint``: a public client uses ``none`` at the
        token endpoint and to revoke its own tokens (RFC 7009 §2.1), never to introspect; a
        confidential client always authenticates (RFC 6749 §3.2.1) with a registered method."""
        if self.is_public:
            return [AuthMethod.NONE] if endpoint != ClientEndpoint.INTROSPECTION else []
        return [m for m in self.auth_methods() if m != AuthMethod.NONE]

    def uses_secret(self) -> bool:
        return any(m in SECRET_METHODS for m in self.auth_methods())

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials" and self.is_public:
            return False
        return grant_type in self.grant_types

    # --- helpers -------------------------------------------------------------------------
    def pkce_required(self) -> bool:
        from .app_settings import app_settings

        return self.is_public or self.require_pkce or app_settings.REQUIRE_PKCE_FOR_ALL_CLIENTS

    def without_pkce_problem(self, scope: str | None, nonce: str | None) -> str | None:
        """Why an authorization request without PKCE is refused, or ``None`` when this
        client may send one: a confidential OpenID client whose PKCE is off, asking for
        ``openid`` with a ``nonce`` (RFC 9700 §2.1.1: nonce instead of PKCE)."""
        if self.pkce_required():
            return "PKCE is required: send code_challenge with code_challenge_method=S256."
        if "openid" not in (scope or "").split() or not nonce:
            return "Without PKCE this client must request the openid scope with a nonce (RFC 9700 section 2.1.1)."
        return None

    def get_access_token_lifetime(self) -> int:
        from .app_settings import app_settings

        return self.access_token_lifetime or app_settings.ACCESS_TOKEN_LIFETIME

    def get_refresh_token_lifetime(self) -> int:
        from .app_settings import app_settings

        return self.refresh_token_lifetime or app_settings.REFRESH_TOKEN_LIFETIME


class KeyStatus(models.TextChoices):
    NEXT = "next", "Published, not yet signing"
    ACTIVE = "active", "Signing"
    RETIRING = "retiring", "Published for verification only"
    RETIRED = "retired", "Removed from the JWKS"


class SigningKeyQuerySet(models.QuerySet["SigningKey"]):
    def published(self) -> SigningKeyQuerySet:
        return self.filter(status__in=[KeyStatus.NEXT, KeyStatus.ACTIVE, KeyStatus.RETIRING])


class SigningKey(models.Model):
    """One asymmetric signing key; ``kid`` is its RFC 7638 thumbprint."""

    kid = models.CharField(max_length=64, unique=True)
    alg = models.CharField(max_length=10)
    status = models.CharField(max_length=10, choices=KeyStatus.choices, db_index=True)
    public_jwk = models.JSONField()
    private_key_encrypted = models.TextField(help_text="Fernet-encrypted private JWK.")
    created_at = models.DateTimeField(default=timezone.now)
    activates_at = models.DateTimeField(help_text="When it starts signing.")
    retired_at = models.DateTimeField(null=True, blank=True, help_text="When it stopped signing.")
    remove_after = models.DateTimeField(
        null=True, blank=True, help_text="Dropped from the JWKS after this (every token it signed has expired)."
    )

    objects = SigningKeyQuerySet.as_manager()

    class Meta:
        db_table = "idp_signing_key"
        ordering = ["-created_at"]
        constraints = [
            # One signer per algorithm; also the lock that lets only one of several processes
            # starting at once create an algorithm's first key (keys.ensure_keys).
            models.UniqueConstraint(
                fields=["alg"], condition=models.Q(status=KeyStatus.ACTIVE), name="idp_one_active_key_per_alg"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.alg} {self.kid[:12]}… ({self.status})"


class AuthorizationCode(models.Model):
    """A single-use authorization code, stored only as its SHA-256 hash."""

    code_hash = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(Client, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    redirect_uri = models.TextField()
    scope = models.TextField(blank=True)
    resource = models.JSONField(default=list, blank=True)
    nonce = models.CharField(max_length=512, blank=True)
    code_challenge = models.CharField(max_length=128, blank=True)
    code_challenge_method = models.CharField(max_length=10, blank=True)
    auth_time = models.DateTimeField()
    amr = models.JSONField(default=list)
    acr = models.CharField(max_length=100, blank=True)
    browser_sid = models.CharField(max_length=64, blank=True, help_text="The login session's sid.")
    dpop_jkt = models.CharField(
        max_length=64, blank=True, default="",
        help_text="RFC 9449 §10: the exchange must carry a DPoP proof of the key with this JWK thumbprint.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "idp_authorization_code"

    # --- Authlib AuthorizationCodeMixin ---------------------------------------------------
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce or None

    def get_auth_time(self) -> int:
        return int(self.auth_time.timestamp())

    def get_acr(self) -> str | None:
        return self.acr or None

    def get_amr(self) -> list[str] | None:
        return list(self.amr) or None

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at


class Consent(models.Model):
    """Scopes a user has agreed to share with a client; asked again only for new scopes."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    client = models.ForeignKey(Client, on_delete=models.CASCADE)
    scopes = models.JSONField(default=list)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "idp_consent"
        constraints = [models.UniqueConstraint(fields=["user", "client"], name="uniq_consent_user_client")]

    def covers(self, scope: str) -> bool:
        return set(scope.split()) <= set(self.scopes)


class SecurityEvent(models.Model):
    """Append-only record of every security decision (see ``idp.events.record``)."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    event_type = models.CharField(max_length=80, db_index=True)
    outcome = models.CharField(max_length=20, db_index=True, help_text="success, failure, denied, info")
    reason = models.CharField(max_length=80, blank=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    client_id = models.CharField(max_length=100, blank=True, db_index=True)
    session_id = models.CharField(max_length=64, blank=True, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "idp_security_event"
        ordering = ["-created_at"]
        # A session's newest events first (risk streaks read them on every refresh): an index
        # scan that stops at the LIMIT, however long the session has lived.
        indexes = [models.Index(fields=["session_id", "id"], name="idp_secevent_session_id")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.event_type} {self.outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("Security events are append-only.")
        super().save(*args, **kwargs)


from .ssf.models import *  # noqa: E402,F401,F403
