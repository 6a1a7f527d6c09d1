"""Settings of the accounts app, read lazily from ``ACCOUNTS_*`` Django settings.

Values may come from Django settings or from the environment (as strings), so every
property coerces its type. Nothing is cached: tests use the ``settings`` fixture.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from core.conf import SettingsReader
from core.cookies import default_name

_reader = SettingsReader("ACCOUNTS_")
_get = _reader.get
_int = _reader.int
_list = _reader.list


def _issuer() -> str:
    return str(getattr(settings, "IDP_ISSUER", "")).rstrip("/")


class AppSettings:
    # ---- throttling (accounts/throttle.py, docs/operations.md "Throttling")
    @property
    def LOGIN_FREE_FAILURES(self) -> int:
        """Failures per account from one source address (or one known device) before each further
        attempt must wait. Default 5."""
        return _int("LOGIN_FREE_FAILURES", 5)

    @property
    def LOGIN_UNFAMILIAR_FREE_FAILURES(self) -> int:
        """Failures per account from all unfamiliar sources together (no known-device cookie, not
        the account's usual network) before delays. Default 20."""
        return _int("LOGIN_UNFAMILIAR_FREE_FAILURES", 20)

    @property
    def LOGIN_SOURCE_FREE_FAILURES(self) -> int:
        """Unfamiliar failures from one source address, over all accounts, before delays. Default 20."""
        return _int("LOGIN_SOURCE_FREE_FAILURES", 20)

    @property
    def LOGIN_DELAY_SECONDS(self) -> int:
        """The first wait once a bucket's free failures are used; it doubles with each further
        failure. Default 1."""
        return _int("LOGIN_DELAY_SECONDS", 1)

    @property
    def LOGIN_MAX_DELAY_SECONDS(self) -> int:
        """The longest wait between two attempts. Default 900 (Keycloak's maxFailureWaitSeconds)."""
        return _int("LOGIN_MAX_DELAY_SECONDS", 900)

    @property
    def LOGIN_FAILURE_RESET_SECONDS(self) -> int:
        """A bucket is forgotten this long after its latest attempt. Default 43200 (12 h,
        Keycloak's maxDeltaTimeSeconds)."""
        return _int("LOGIN_FAILURE_RESET_SECONDS", 43200)

    @property
    def KNOWN_DEVICE_COOKIE(self) -> str:
        """Name of the signed known-device cookie issued at each full sign-in. Default
        "__Host-vigil_device" under an https issuer, else "vigil_device" (``core.cookies``)."""
        return str(_get("KNOWN_DEVICE_COOKIE", default_name("vigil_device")))

    @property
    def KNOWN_DEVICE_DAYS(self) -> int:
        """Days a known-device cookie is honoured after the last sign-in on it. Default 180."""
        return _int("KNOWN_DEVICE_DAYS", 180)

    @property
    def KNOWN_NETWORK_DAYS(self) -> int:
        """Days a network (IPv4 /24, IPv6 /48) stays an account's usual network after a full
        sign-in from it. Default 30."""
        return _int("KNOWN_NETWORK_DAYS", 30)

    @property
    def PENDING_LOGIN_SECONDS(self) -> int:
        """Seconds between a correct password and the second factor before starting over. Default 300."""
        return _int("PENDING_LOGIN_SECONDS", 300)

    @property
    def REAUTH_SECONDS(self) -> int:
        """Changing factors or the password needs an authentication at most this old. Default 900."""
        return _int("REAUTH_SECONDS", 900)

    @property
    def RECOVERY_CODE_COUNT(self) -> int:
        """Recovery codes generated at a time. Default 10."""
        return _int("RECOVERY_CODE_COUNT", 10)

    @property
    def TOTP_ISSUER(self) -> str:
        """Issuer label in the ``otpauth://`` URI shown as a QR code. Default "Vigil"."""
        return str(_get("TOTP_ISSUER", "Vigil"))

    @property
    def WEBAUTHN_RP_ID(self) -> str:
        """WebAuthn Relying Party ID (WebAuthn L3 §5.1.2). Default: the host of ``IDP_ISSUER``."""
        return str(_get("WEBAUTHN_RP_ID", "") or urlsplit(_issuer()).hostname or "localhost")

    @property
    def WEBAUTHN_RP_NAME(self) -> str:
        """Name shown by authenticators. Default "Vigil"."""
        return str(_get("WEBAUTHN_RP_NAME", "Vigil"))

    @property
    def WEBAUTHN_ALLOWED_ORIGINS(self) -> list[str]:
        """Origins accepted in ``clientDataJSON`` (WebAuthn L3 §7.1 step 9): the issuer's origin by
        default; add native ones such as ``android:apk-key-hash:<base64url SHA-256 of the signing cert>``."""
        issuer = urlsplit(_issuer())
        default = [f"{issuer.scheme}://{issuer.netloc}"] if issuer.netloc else []
        return [str(o).rstrip("/") for o in _list("WEBAUTHN_ALLOWED_ORIGINS", default)]

    @property
    def WEBAUTHN_CHALLENGE_SECONDS(self) -> int:
        """Seconds a WebAuthn challenge stays valid (and the ceremony timeout). Default 300."""
        return _int("WEBAUTHN_CHALLENGE_SECONDS", 300)

    @property
    def ASSET_LINKS(self) -> list[dict[str, Any]]:
        """Android apps for ``/.well-known/assetlinks.json``: dicts with ``package_name`` and
        ``sha256_cert_fingerprints`` (a JSON string in the environment). Default none."""
        return [dict(item) for item in _list("ASSET_LINKS", [])]

    @property
    def APPLE_APP_IDS(self) -> list[str]:
        """``TEAMID.bundle.id`` values for ``/.well-known/apple-app-site-association``
        (``webcredentials``). Default none."""
        return [str(v) for v in _list("APPLE_APP_IDS", [])]


app_settings = AppSettings()
