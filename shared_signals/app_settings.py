"""Settings of the Shared Signals transmitter and receiver, read lazily from ``IDP_SSF_*``.

Nothing is cached, so tests can use the ``settings`` fixture.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings


def _get(name: str, default: Any) -> Any:
    return getattr(settings, f"IDP_SSF_{name}", default)


class SsfSettings:
    @property
    def SIGNING_ALG(self) -> str:
        """JWS algorithm of the SETs we transmit (one of our key algorithms). Default ES256."""
        return str(_get("SIGNING_ALG", "ES256"))

    @property
    def HTTP_TIMEOUT(self) -> float:
        """Seconds for each push (connect and read) and each JWKS fetch. Default 5."""
        return float(_get("HTTP_TIMEOUT", 5))

    @property
    def JWKS_CACHE_SECONDS(self) -> int:
        """How long a transmitter's fetched JWKS is reused (shared cache). Default 300."""
        return int(_get("JWKS_CACHE_SECONDS", 300))

    @property
    def JWKS_MIN_REFETCH_SECONDS(self) -> int:
        """An unknown ``kid`` refetches the JWKS at most this often. Default 30."""
        return int(_get("JWKS_MIN_REFETCH_SECONDS", 30))

    @property
    def MAX_SET_AGE_SECONDS(self) -> int:
        """Received SETs whose ``iat`` is older are refused (the replay window). Default 7 days."""
        return int(_get("MAX_SET_AGE_SECONDS", 7 * 24 * 3600))

    @property
    def CLOCK_SKEW_SECONDS(self) -> int:
        """Tolerance for an ``iat`` in the future. Default 300."""
        return int(_get("CLOCK_SKEW_SECONDS", 300))

    @property
    def MAX_BODY_BYTES(self) -> int:
        """Largest SET the push endpoint reads. Default 64 KiB."""
        return int(_get("MAX_BODY_BYTES", 64 * 1024))

    @property
    def RETRY_SWEEP_SECONDS(self) -> int:
        """Period of the "retry undelivered" beat task (0 disables it). Default 900."""
        return int(_get("RETRY_SWEEP_SECONDS", 900))

    @property
    def STUCK_AFTER_SECONDS(self) -> int:
        """A pending delivery untouched this long is enqueued again by the sweep. Default 600."""
        return int(_get("STUCK_AFTER_SECONDS", 600))

    @property
    def GIVE_UP_AFTER_SECONDS(self) -> int:
        """Failed deliveries younger than this are retried by the sweep. Default 3 days."""
        return int(_get("GIVE_UP_AFTER_SECONDS", 3 * 24 * 3600))

    @property
    def KEEP_DELIVERIES_DAYS(self) -> int:
        """Delivered and rejected deliveries are deleted after this many days. Default 30."""
        return int(_get("KEEP_DELIVERIES_DAYS", 30))


app_settings = SsfSettings()
