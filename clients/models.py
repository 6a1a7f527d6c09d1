"""Registered OAuth clients (relying parties) and their authentication methods."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models, transaction
from django.utils import timezone

from core import crypto
from core.app_settings import app_settings
from core.config_cache import ConfigQuerySet
from core.deactivation import DeactivatingQuerySet
from core.policy import GrantType

from . import audiences
from .redirects import redirect_uri_matches
from .signals import deactivated_in_bulk


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
#: Grants only a confidential client may use (RFC 6749 §4.4; RFC 8693 is for services).
CONFIDENTIAL_ONLY_GRANTS = frozenset({GrantType.CLIENT_CREDENTIALS, GrantType.TOKEN_EXCHANGE})


class ClientEndpoint(models.TextChoices):
    """Endpoints where a client authenticates (Authlib's endpoint names)."""

    TOKEN = "token"
    INTROSPECTION = "introspection"
    REVOCATION = "revocation"
    USAGE = "usage"  # the relying services' usage reports (idp/usage_api/views.py)
    DEVICE_AUTHORIZATION = "device_authorization"  # RFC 8628 §3.1
    PAR = "pushed_authorization_request"  # RFC 9126 §2: authenticates like the token endpoint


class ClientProfile(models.TextChoices):
    """A security profile: a set of rules the client's every request must meet."""

    STANDARD = "standard", "Standard (OAuth 2.0 / OpenID Connect with Vigil's defaults)"
    FAPI2 = "fapi2", "FAPI 2.0 Security Profile (docs/fapi.md)"


#: FAPI 2.0 Security Profile §5.4.1: the JWS algorithms a FAPI client and Vigil use with it
#: (EdDSA is allowed by the profile too; Vigil keeps to the two every FAPI client supports).
FAPI2_ALGS = ("ES256", "PS256")


def default_signing_alg() -> str:
    """``IDP_SIGNING_ALG`` (default RS256, OIDC Dynamic Client Registration §2's default)."""
    return app_settings.SIGNING_ALG


#: Links shown to people leave our origin only over https.
HTTPS_ONLY = URLValidator(schemes=["https"], message="Enter an https URL.", code="https_only")


#: What ``clients.audiences`` judges: a write of any of these is checked.
AUDIENCE_FIELDS = frozenset(field.value for field in audiences.AudienceField)


def refuse_audience_problems(clients: Iterable[Client]) -> None:
    """``ValidationError`` (each problem under its field) when a client breaks the audience
    model (``clients.audiences``)."""
    found = [p for c in clients for p in audiences.problems(c.client_id, c.served_resources,
                                                            c.token_exchange_audiences)]
    if found:
        raise ValidationError(audiences.by_field(found))


class ClientQuerySet(DeactivatingQuerySet["Client"], ConfigQuerySet["Client"]):  # type: ignore[override]  # two bases' as_manager
    """Bulk deactivation (``update(is_active=False)``, ``bulk_update`` of ``is_active``) is
    announced (``signals.deactivated_in_bulk``) as a ``save()`` is by ``post_save``: the
    clients' families and tokens end at once either way (``sessions.flows.cascade``). Bulk
    writes of the audience fields are held to ``clients.audiences`` as ``save()`` is: an
    ``update()`` is judged on the rows it wrote, in its transaction, and undone when refused."""

    def active(self) -> ClientQuerySet:
        return self.filter(is_active=True)

    def deactivated(self, rows: list[Client]) -> None:
        deactivated_in_bulk.send(sender=Client, clients=rows)

    def update(self, **kwargs: Any) -> int:
        if AUDIENCE_FIELDS.isdisjoint(kwargs):
            return super().update(**kwargs)
        with transaction.atomic(using=self.db):
            written = list(self.values_list("pk", flat=True))  # before: the write may change what matches
            rows = super().update(**kwargs)
            refuse_audience_problems(self.model._default_manager.using(self.db).filter(pk__in=written))
        return rows

    def bulk_update(self, objs: Iterable[Client], fields: Iterable[str], batch_size: int | None = None) -> int:
        objs, fields = list(objs), list(fields)
        if not AUDIENCE_FIELDS.isdisjoint(fields):
            refuse_audience_problems(objs)
        return super().bulk_update(objs, fields, batch_size=batch_size)

    def bulk_create(self, objs: Iterable[Client], *args: Any, **kwargs: Any) -> list[Client]:
        objs = list(objs)
        refuse_audience_problems(objs)
        return super().bulk_create(objs, *args, **kwargs)


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
        "client's tokens without a resource): it may introspect access tokens whose aud names one (RFC 7662 §4). "
        "Never the issuer or a URL below it, the userinfo endpoint included: Vigil alone serves those.",
    )
    # db_default on the fields added after the first release: rows inserted by code that does not
    # know them yet (a rolling deploy, an older migration state) still get a value.
    token_exchange_audiences = models.JSONField(
        default=list, db_default=[], blank=True,
        help_text="RFC 8693: the audiences (resource URIs or client_ids) this confidential "
        "client may ask for when it exchanges a user's access token; empty: it may not exchange. The userinfo "
        "endpoint's URL, exactly as discovery publishes it, lets it read /userinfo with the tokens it exchanges; "
        "never its own client_id nor another of the issuer's URLs.",
    )
    backchannel_logout_uri = models.URLField(
        max_length=2000, blank=True, db_default="",
        help_text="OpenID Connect Back-Channel Logout 1.0 §2.2: where logout tokens "
        "are POSTed when a session of this client ends (https, or http on a loopback address).",
    )
    backchannel_logout_session_required = models.BooleanField(
        default=False, db_default=False,
        help_text="Back-Channel Logout §2.2: this client needs the sid claim in logout tokens "
        "(Vigil always sends sid and sub)."
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
    # db_default: rows written by code that predates these columns (a rolling deploy) still insert.
    profile = models.CharField(
        max_length=20, choices=ClientProfile.choices, default=ClientProfile.STANDARD, db_default="standard",
        help_text="FAPI 2.0: pushed requests, PKCE S256, DPoP, private_key_jwt, ES256/PS256, 60 s codes "
        "(docs/fapi.md).",
    )
    require_pushed_authorization_requests = models.BooleanField(
        default=False, db_default=False,
        help_text="Accept authorization requests only through /par (RFC 9126 §6; also IDP_REQUIRE_"
        "PUSHED_AUTHORIZATION_REQUESTS for every client, and always under the FAPI 2.0 profile)."
    )
    require_signed_request_object = models.BooleanField(
        default=False, db_default=False,
        help_text="Accept authorization requests only as a request object signed with the "
        "client's registered keys (RFC 9101 §10.5), by value or pushed."
    )
    request_uris = models.JSONField(
        default=list, blank=True, db_default=models.Value([], output_field=models.JSONField()),
        help_text="https URLs of request objects Vigil may fetch for this client (OIDC Core "
        "§6.2, RFC 9101 §5.2); any other request_uri not issued by /par is refused.",
    )
    access_token_lifetime = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds; default 300.")
    refresh_token_lifetime = models.PositiveIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    # --- what people see on the sign-in pages (clients/branding.py) ---------------------------
    # db_default: rows written by code that predates these columns (a rolling deploy) still insert.
    display_name = models.CharField(
        max_length=100, blank=True, db_default="",
        help_text="Shown to people: \"Sign in to <display name>\". Empty: the name above.",
    )
    privacy_policy_url = models.URLField(
        max_length=500, blank=True, db_default="", validators=[HTTPS_ONLY],
        help_text="https only; linked on the sign-in pages.",
    )
    terms_url = models.URLField(
        max_length=500, blank=True, db_default="", validators=[HTTPS_ONLY],
        help_text="https only; linked on the sign-in pages.",
    )
    scope_descriptions = models.JSONField(
        default=dict, blank=True, db_default=models.Value({}, output_field=models.JSONField()),
        help_text="What each of this client's own scopes lets it do, as the consent page says it: "
        "{\"orders.read\": \"See your orders\"}. Keys may carry a language: \"orders.read@de\". "
        "Standard OpenID scopes are described already.",
    )

    objects = ClientQuerySet.as_manager()

    class Meta:
        db_table = "idp_client"

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Refused (``ValidationError``) when the audiences written break the audience model
        (``clients.audiences``); a save of other fields only (``update_fields``: deactivating
        a client) never is."""
        update_fields = kwargs.get("update_fields")
        if update_fields is None or not AUDIENCE_FIELDS.isdisjoint(update_fields):
            refuse_audience_problems([self])
        super().save(*args, **kwargs)

    def clean(self) -> None:
        """The audience model's problems, each under its field (the admin form shows them)."""
        super().clean()
        refuse_audience_problems([self])

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
        return response_type == "code" and GrantType.AUTHORIZATION_CODE in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type in CONFIDENTIAL_ONLY_GRANTS and self.is_public:
            return False
        return grant_type in self.grant_types

    # --- helpers -------------------------------------------------------------------------
    def pkce_required(self) -> bool:
        return self.is_fapi2 or self.is_public or self.require_pkce or app_settings.REQUIRE_PKCE_FOR_ALL_CLIENTS

    def without_pkce_problem(self, scope: str | None, nonce: str | None) -> str | None:
        """Why an authorization request without PKCE is refused, or ``None`` when this
        client may send one: a confidential OpenID client whose PKCE is off, asking for
        ``openid`` with a ``nonce`` (RFC 9700 §2.1.1: nonce instead of PKCE)."""
        if self.pkce_required():
            return "PKCE is required: send code_challenge with code_challenge_method=S256."
        if "openid" not in (scope or "").split() or not nonce:
            return "Without PKCE this client must request the openid scope with a nonce (RFC 9700 section 2.1.1)."
        return None

    # --- profiles (FAPI 2.0, RFC 9126, RFC 9101) ------------------------------------------------
    @property
    def is_fapi2(self) -> bool:
        return self.profile == ClientProfile.FAPI2

    def par_required(self) -> bool:
        """RFC 9126 §6: only pushed authorization requests are accepted from this client."""
        return (
            self.require_pushed_authorization_requests or self.is_fapi2
            or app_settings.REQUIRE_PUSHED_AUTHORIZATION_REQUESTS
        )

    def dpop_required(self) -> bool:
        """RFC 9449: token requests need a proof (FAPI 2.0 §5.3.2.1: sender-constrained tokens)."""
        return self.require_dpop or self.is_fapi2

    def get_access_token_lifetime(self) -> int:
        return self.access_token_lifetime or app_settings.ACCESS_TOKEN_LIFETIME

    def get_refresh_token_lifetime(self) -> int:
        return self.refresh_token_lifetime or app_settings.REFRESH_TOKEN_LIFETIME

    @property
    def shown_name(self) -> str:
        """The name people see: the display name, else the registered name."""
        return self.display_name or self.name


class ClientLogo(models.Model):
    """A client's logo as the PNG we re-encoded (``clients.logo``), apart from the client row
    so the token endpoint's client lookups never load image bytes."""

    client = models.OneToOneField(Client, on_delete=models.CASCADE, primary_key=True, related_name="logo")
    image = models.BinaryField(help_text="PNG re-encoded from the upload.")
    sha256 = models.CharField(max_length=64)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "clients_logo"

    def __str__(self) -> str:
        return f"logo of {self.client_id}"
