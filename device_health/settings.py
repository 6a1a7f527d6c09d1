"""Settings of device health, read lazily from ``ATTESTATION_HEALTH_*`` / ``ATTESTATION_APPLE_RECEIPT_*``
Django settings (or environment variables of the same name). Nothing is cached."""

from __future__ import annotations

from core.conf import SettingsReader

_get = SettingsReader("ATTESTATION_").get


class HealthSettings:
    @property
    def REDUCED_SCOPES(self) -> str:
        """Scopes a default 'reduce' rule keeps. Default ``openid profile``."""
        return str(_get("HEALTH_REDUCED_SCOPES", "openid profile"))

    @property
    def REDUCED_LIFETIME(self) -> int:
        """Access-token seconds under a default 'reduce' rule. Default 120 (at most 300)."""
        return min(int(_get("HEALTH_REDUCED_LIFETIME", 120)), 300)

    @property
    def MAX_PATCH_AGE_MONTHS(self) -> int:
        """Months an Android OS patch level may lag before the default rule reduces. Default 12."""
        return int(_get("HEALTH_MAX_PATCH_AGE_MONTHS", 12))

    @property
    def MIN_IOS_VERSION(self) -> str:
        """iOS versions below this (self-reported) get reduced scopes by default. Default ``17.0``."""
        return str(_get("HEALTH_MIN_IOS_VERSION", "17.0"))

    @property
    def STEP_UP_MAX_AGE(self) -> int:
        """Seconds since the user authenticated that satisfy a step-up at the code exchange. Default 300."""
        return int(_get("HEALTH_STEP_UP_MAX_AGE", 300))

    @property
    def EVALUATED_AT_INTERVAL(self) -> int:
        """Seconds an evaluation that changes nothing may leave the snapshot's ``evaluated_at``
        (and the date of the last Play Integrity check among its facts) behind before writing
        them again. Default 600; 0 writes them at every evaluation. Both are only shown (admin,
        account page); any other change (outcome, findings, facts, signals) is written at once."""
        return max(int(_get("HEALTH_EVALUATED_AT_INTERVAL", 600)), 0)

    @property
    def REVALIDATE_SECONDS(self) -> int:
        """Period of the revalidation task in Celery beat; 0 disables. Default 3600."""
        return int(_get("HEALTH_REVALIDATE_SECONDS", 3600))

    @property
    def REVALIDATE_BATCH(self) -> int:
        """Devices loaded per query by the revalidation task. Default 500."""
        return int(_get("HEALTH_REVALIDATE_BATCH", 500))

    @property
    def RECEIPT_BASE_URL(self) -> str:
        """Apple's App Attest receipt service ("Assessing fraud risk"). Default
        ``https://data.appattest.apple.com``; development apps use ``RECEIPT_DEVELOPMENT_BASE_URL``."""
        return str(_get("APPLE_RECEIPT_BASE_URL", "https://data.appattest.apple.com")).rstrip("/")

    @property
    def RECEIPT_DEVELOPMENT_BASE_URL(self) -> str:
        """Default ``https://data-development.appattest.apple.com``."""
        return str(_get("APPLE_RECEIPT_DEVELOPMENT_BASE_URL", "https://data-development.appattest.apple.com")).rstrip("/")

    @property
    def RECEIPT_SIGNING_KEY(self) -> str:
        """PEM of the DeviceCheck private key (ES256) that signs the receipt-service JWT. Default empty
        (the receipt refresh is skipped)."""
        return str(_get("APPLE_RECEIPT_SIGNING_KEY", ""))

    @property
    def RECEIPT_KEY_ID(self) -> str:
        """Key id of that DeviceCheck key (the JWT ``kid``)."""
        return str(_get("APPLE_RECEIPT_KEY_ID", ""))

    @property
    def RECEIPT_ROOT_CERTS(self) -> list[str]:
        """PEM file paths (list, or comma-separated) of the roots a refreshed receipt's CMS
        signature must chain to (Apple Root CA - G3). Default empty: the signature is not checked
        and the fields are taken from Apple's TLS endpoint."""
        value = _get("APPLE_RECEIPT_ROOT_CERTS", [])
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return [str(v) for v in value]

    @property
    def RECEIPT_TIMEOUT(self) -> float:
        """Seconds per receipt-service request. Default 10."""
        return float(_get("APPLE_RECEIPT_TIMEOUT", 10))

    @property
    def RECEIPT_REFRESH_SECONDS(self) -> int:
        """Period of the receipt refresh in Celery beat; 0 disables. Default 86400 (Apple
        refreshes a receipt at most once a day)."""
        return int(_get("APPLE_RECEIPT_REFRESH_SECONDS", 86400))


health_settings = HealthSettings()
