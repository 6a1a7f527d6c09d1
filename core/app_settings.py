"""Settings of the OAuth/OIDC provider, read lazily from ``IDP_*`` Django settings.

Each property documents its default. Values may come from Django settings or from
the environment (as strings), so every property coerces its type. Nothing is cached:
tests use ``settings`` fixtures / ``override_settings`` and see the change at once.
"""

from __future__ import annotations

from django.conf import settings

from core.conf import SettingsReader
from core.rates import Rate

_reader = SettingsReader("IDP_")
_get = _reader.get
_int = _reader.int
_bool = _reader.bool
_list = _reader.list
_rate = _reader.rate


class AppSettings:
    @property
    def ISSUER(self) -> str:
        """The issuer identifier (``iss``); every endpoint URL is derived from it."""
        return str(_get("ISSUER", "")).rstrip("/")

    @property
    def ACCESS_TOKEN_LIFETIME(self) -> int:
        """Seconds an access token lives. Default 300 (5 minutes)."""
        return _int("ACCESS_TOKEN_LIFETIME", 300)

    @property
    def ID_TOKEN_LIFETIME(self) -> int:
        """Seconds an ID token is valid. Default 300."""
        return _int("ID_TOKEN_LIFETIME", 300)

    @property
    def REFRESH_TOKEN_LIFETIME(self) -> int:
        """Seconds a refresh token lives after issue (each rotation issues a new one). Default 30 days."""
        return _int("REFRESH_TOKEN_LIFETIME", 30 * 24 * 3600)

    @property
    def REFRESH_TOKEN_GRACE_SECONDS(self) -> int:
        """Seconds after its rotation a refresh token may be presented again (a response lost
        on a flaky network, concurrent refreshes in one app) and get the *same* successor, as
        long as that successor is unused: nothing new becomes live, so a thief replaying it
        gets only the token the client holds and the second use of that revokes the family.
        Default 30. 0: every re-presentation is reuse and revokes the family (a lost response
        then logs the user out). Device-bound families get at least
        ``SESSIONS_DEVICE_BOUND_REFRESH_GRACE_SECONDS``. See docs/device-sessions.md."""
        return _int("REFRESH_TOKEN_GRACE_SECONDS", 30)

    @property
    def AUTHORIZATION_CODE_LIFETIME(self) -> int:
        """Seconds an authorization code is valid. Default 60."""
        return _int("AUTHORIZATION_CODE_LIFETIME", 60)

    @property
    def DEVICE_CODE_LIFETIME(self) -> int:
        """Seconds a device code and its user code are valid (RFC 8628 §3.2 ``expires_in``). Default 600."""
        return _int("DEVICE_CODE_LIFETIME", 600)

    @property
    def DEVICE_CODE_INTERVAL(self) -> int:
        """Seconds a device must wait between polls (RFC 8628 §3.2 ``interval``); polling faster
        answers ``slow_down`` and adds 5 seconds (§3.5). Default 5."""
        return _int("DEVICE_CODE_INTERVAL", 5)

    # ---- the rates of the endpoints where a public client makes us store something
    # (idp/flows/request_rates.py): DRF syntax, ``<requests>/<s|min|hour|day>``; system check vigil.E040.
    @property
    def DEVICE_AUTHORIZATION_RATE(self) -> Rate:
        """Device authorizations (RFC 8628 §3.1) one public client may start from one address.
        Default ``30/min``: a TV or command-line tool starts one per sign-in, and a whole office
        behind one NAT rarely starts thirty in a minute."""
        return _rate("DEVICE_AUTHORIZATION_RATE", "30/min")

    @property
    def DEVICE_AUTHORIZATION_ADDRESS_RATE(self) -> Rate:
        """Device authorizations one address may start, all public clients together. Default
        ``60/min``: at most 600 pending rows per address over a code's 600 s."""
        return _rate("DEVICE_AUTHORIZATION_ADDRESS_RATE", "60/min")

    @property
    def PAR_RATE(self) -> Rate:
        """Pushed authorization requests (RFC 9126 §2) one public client may make from one
        address. Default ``60/min``: an app pushes one per sign-in, and a mobile carrier's NAT
        address is shared by many of its users."""
        return _rate("PAR_RATE", "60/min")

    @property
    def PAR_ADDRESS_RATE(self) -> Rate:
        """Pushed authorization requests one address may make, all public clients together.
        Default ``120/min``, the attestation challenge's per-address rate: each address adds at
        most 120 waiting requests (of at most 16384 characters) a minute to the shared cache."""
        return _rate("PAR_ADDRESS_RATE", "120/min")

    @property
    def SIGNING_ALG(self) -> str:
        """JWS algorithm of the ID and access tokens of a client registered without one.
        Default RS256: OpenID Connect Dynamic Client Registration §2's default for
        ``id_token_signed_response_alg``, and what Spring Security and mozilla-django-oidc
        expect unless configured (pyoidc cannot verify EdDSA). A client's own choice
        (``create_client --signing-alg``, the admin) wins; existing clients keep theirs."""
        return str(_get("SIGNING_ALG", "RS256"))

    @property
    def SUPPORTED_SIGNING_ALGS(self) -> list[str]:
        """Algorithms a client may choose for its tokens."""
        return _list("SUPPORTED_SIGNING_ALGS", ["ES256", "RS256", "EdDSA"])

    @property
    def KEY_ROTATION_DAYS(self) -> int:
        """Days an active signing key signs before the periodic task rotates it. Default 30."""
        return _int("KEY_ROTATION_DAYS", 30)

    @property
    def KEY_PUBLISH_AHEAD_SECONDS(self) -> int:
        """Seconds a new key is published in the JWKS before it starts signing, so caches
        of relying parties pick it up first. Default 3600; ``rotate_keys --now`` skips it."""
        return _int("KEY_PUBLISH_AHEAD_SECONDS", 3600)

    @property
    def JWKS_CACHE_SECONDS(self) -> int:
        """``Cache-Control: max-age`` of the JWKS. Must stay below KEY_PUBLISH_AHEAD_SECONDS."""
        return _int("JWKS_CACHE_SECONDS", 900)

    @property
    def SCOPES_SUPPORTED(self) -> list[str]:
        return _list("SCOPES_SUPPORTED", ["openid", "profile", "email", "offline_access"])

    @property
    def REQUIRE_PKCE_FOR_ALL_CLIENTS(self) -> bool:
        """PKCE S256 for every client, whatever its own ``require_pkce`` says. Default on.
        Turn off to let a confidential OpenID client registered without PKCE
        (``create_client --no-pkce``) use ``nonce`` instead (RFC 9700 §2.1.1); public
        clients always need PKCE."""
        return _bool("REQUIRE_PKCE_FOR_ALL_CLIENTS", True)

    @property
    def REQUIRE_PUSHED_AUTHORIZATION_REQUESTS(self) -> bool:
        """Accept authorization requests from every client only through ``/par`` (RFC 9126
        §5 ``require_pushed_authorization_requests``). Default off (per-client flag)."""
        return _bool("REQUIRE_PUSHED_AUTHORIZATION_REQUESTS", False)

    @property
    def PAR_REQUEST_URI_LIFETIME(self) -> int:
        """Seconds a pushed request's ``request_uri`` may wait for the browser (RFC 9126 §2.2
        ``expires_in``; FAPI 2.0 §5.3.2.2 wants under 600). Default 60; at most 600."""
        return min(max(_int("PAR_REQUEST_URI_LIFETIME", 60), 1), 599)

    @property
    def REQUEST_OBJECT_MAX_LIFETIME_SECONDS(self) -> int:
        """Seconds a request object (RFC 9101) may live: its ``exp`` at most this long after its
        ``iat``, its ``nbf`` and now. Default 3600 (Keycloak's secure-request-object "available
        period", FAPI 2.0 Message Signing §5.3.2's 60 minutes, which FAPI clients keep)."""
        return max(_int("REQUEST_OBJECT_MAX_LIFETIME_SECONDS", 3600), 1)

    @property
    def CLIENT_ASSERTION_MAX_AGE(self) -> int:
        """Seconds a ``private_key_jwt`` client assertion may live. Default 300."""
        return _int("CLIENT_ASSERTION_MAX_AGE", 300)

    @property
    def REQUIRE_MFA(self) -> bool:
        """Require a second factor for every user and client. Default off (per-client flag)."""
        return _bool("REQUIRE_MFA", False)

    @property
    def OUTAGE_RETRY_AFTER_SECONDS(self) -> int:
        """``Retry-After`` of the 503 answered while PostgreSQL or Redis is unreachable
        (docs/operations.md "Outages"). Default 5."""
        return _int("OUTAGE_RETRY_AFTER_SECONDS", 5)

    # ---- the pages people see (clients/branding.py, README "Configuration")
    @property
    def THEME_NAME(self) -> str:
        """The name of this sign-in service, in every page's header and title. Default "Vigil"."""
        return str(_get("THEME_NAME", "Vigil")).strip() or "Vigil"

    @property
    def THEME_LOGO(self) -> str:
        """Path of a PNG, JPEG or WebP file shown beside ``THEME_NAME``; checked at start
        (``clients.E001``), re-encoded and served from ``/branding/logo.png``. Default none."""
        return str(_get("THEME_LOGO", "")).strip()

    @property
    def THEME_ACCENT_COLOR(self) -> str:
        """Buttons and links, ``#rrggbb``; white text on it must reach WCAG 2.2's 4.5:1
        contrast (``clients.E002``). Default ``#1d4ed8``."""
        return str(_get("THEME_ACCENT_COLOR", "#1d4ed8")).strip().lower()

    @property
    def THEME_BACKGROUND_COLOR(self) -> str:
        """Page background, ``#rrggbb``; the dark text on it must reach 4.5:1 (``clients.E002``).
        Default ``#ffffff``."""
        return str(_get("THEME_BACKGROUND_COLOR", "#ffffff")).strip().lower()

    @property
    def CLIENT_LOGO_MAX_BYTES(self) -> int:
        """Largest logo upload accepted for a client (admin, ``create_client --logo``). Default 262144 (256 KB)."""
        return _int("CLIENT_LOGO_MAX_BYTES", 256 * 1024)

    @property
    def OUTBOUND_ALLOW_PRIVATE_ADDRESSES(self) -> bool:
        """Whether URLs that clients, transmitters and receivers registered (``request_uri``,
        ``jwks_uri``, push endpoints, ``backchannel_logout_uri``) may lead Vigil to loopback,
        private, link-local or shared addresses (``core.outbound``). Default False: a party that
        controls its DNS could otherwise make Vigil reach its internal network. On for tests and
        for relying parties on an internal network only; cloud metadata, multicast and reserved
        addresses stay refused either way (``manage.py check --deploy`` warns, ``vigil.W020``)."""
        return _bool("OUTBOUND_ALLOW_PRIVATE_ADDRESSES", False)

    @property
    def ALLOW_INSECURE_HTTP_ISSUER(self) -> bool:
        """An ``http://localhost`` issuer, for development and tests only (needs DEBUG or testing)."""
        return bool(settings.DEBUG or getattr(settings, "TESTING", False))


app_settings = AppSettings()
