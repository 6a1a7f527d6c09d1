"""Settings of the accounts app, read lazily from ``ACCOUNTS_*`` Django settings.

Values may come from Django settings or from the environment (as strings), so every
property coerces its type. Nothing is cached: tests use the ``settings`` fixture.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from idp.conf import SettingsReader


_reader = SettingsReader("ACCOUNTS_")
_get = _reader.get
_int = _reader.int
_list = _reader.list


def _issuer() -> str:
    return str(getattr(settings, "IDP_ISSUER", "")).rstrip("/")


class AppSettings:
    @property
    def LOGIN_FAILURES_PER_ACCOUNT(self) -> int:
        """Failed logins (password or second factor) per account in the window before refusing. Default 5."""
        return _int("LOGIN_FAILURES_PER_ACCOUNT", 5)

    @property
    def LOGIN_FAILURES_PER_IP(self) -> int:
        """Failed logins from one IP address in the window before refusing. Default 20."""
        return _int("LOGIN_FAILURES_PER_IP", 20)

    @property
    def LOGIN_FAILURE_WINDOW(self) -> int:
        """Seconds over which failures are counted (and the lock-out lasts). Default 900."""
        return _int("LOGIN_FAILURE_WINDOW", 900)

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
