"""Settings of device attestation, read lazily from ``ATTESTATION_*`` Django settings.

Each property documents its default. Values may come from Django settings or from the
environment (``idp/settings.py`` copies every ``ATTESTATION_*`` environment variable into
Django settings as a string), so every property coerces its type. Nothing is cached:
tests use the ``settings`` fixture / ``override_settings`` and see the change at once.

Layout: shared settings first, then one marked section per platform. The Android
section is owned by the Android verifier (``attestation/android/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

CERTS_DIR = Path(__file__).resolve().parent / "certs"


def _get(name: str, default: Any) -> Any:
    return getattr(settings, f"ATTESTATION_{name}", default)


def _int(name: str, default: int) -> int:
    return int(_get(name, default))


def _bool(name: str, default: bool) -> bool:
    value = _get(name, default)
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _list(name: str, default: list[str]) -> list[str]:
    """A list from a Python list or a comma-separated string (paths may contain spaces)."""
    value = _get(name, default)
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


class AppSettings:
    # ------------------------------------------------------------------ shared
    @property
    def CHALLENGE_LIFETIME(self) -> int:
        """Seconds an attestation challenge may be redeemed after issue. Default 300."""
        return _int("CHALLENGE_LIFETIME", 300)

    @property
    def CHALLENGE_BYTES(self) -> int:
        """Bytes of entropy of an issued challenge (base64url encoded on the wire). Default 32."""
        return _int("CHALLENGE_BYTES", 32)

    @property
    def ALLOW_TEST_ROOTS(self) -> bool:
        """Trust the test PKIs of ``attestation/testing/`` (the device simulator). Default off.

        Never enable in production: anyone can mint attestations under those roots."""
        return _bool("ALLOW_TEST_ROOTS", False)

    # ------------------------------------------------------------------ Apple
    @property
    def APPLE_ROOT_CERTS(self) -> list[str]:
        """PEM file paths of the trusted App Attest roots. Default: the shipped Apple App
        Attestation Root CA. A non-empty value (list, or comma-separated string from the
        environment) replaces the shipped root."""
        return _list("APPLE_ROOT_CERTS", []) or [str(CERTS_DIR / "apple" / "Apple_App_Attestation_Root_CA.pem")]

    # ------------------------------------------------------------------ Android
    # ATTESTATION_ANDROID_* properties (root certs, revocation list, Play Integrity API
    # client...) are added here by the Android verifier. Keep them in this section.


app_settings = AppSettings()
