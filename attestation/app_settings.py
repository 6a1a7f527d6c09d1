"""Settings of device attestation, read lazily from ``ATTESTATION_*`` Django settings.

Each property documents its default. Values may come from Django settings or from the
environment (``vigil/settings.py`` copies every ``ATTESTATION_*`` environment variable into
Django settings as a string), so every property coerces its type. Nothing is cached:
tests use the ``settings`` fixture / ``override_settings`` and see the change at once.

Layout: shared settings first, then one marked section per platform. The Android
section is owned by the Android verifier (``attestation/android/``).
"""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings as django_settings

from core.conf import SettingsReader
from core.rates import Rate

CERTS_DIR = Path(__file__).resolve().parent / "certs"


_reader = SettingsReader("ATTESTATION_")
_get = _reader.get
_int = _reader.int
_bool = _reader.bool
_rate = _reader.rate
_list = functools.partial(_reader.list, commas_only=True)  # paths may contain spaces


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
    def CHALLENGE_RATE(self) -> Rate:
        """Per-IP rate of the challenge endpoint, DRF syntax. Default ``120/min``; one that
        cannot be read is system check ``attestation.E004``."""
        return _rate("CHALLENGE_RATE", "120/min")

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

    # ------------------------------------------------------------------ Apple DeviceCheck
    @property
    def DEVICECHECK_BASE_URL(self) -> str:
        """Apple's DeviceCheck server API for production apps. Default
        ``https://api.devicecheck.apple.com``; development apps use ``DEVICECHECK_DEVELOPMENT_BASE_URL``."""
        return str(_get("DEVICECHECK_BASE_URL", "https://api.devicecheck.apple.com")).rstrip("/")

    @property
    def DEVICECHECK_DEVELOPMENT_BASE_URL(self) -> str:
        """Default ``https://api.development.devicecheck.apple.com``."""
        return str(_get("DEVICECHECK_DEVELOPMENT_BASE_URL", "https://api.development.devicecheck.apple.com")).rstrip("/")

    @property
    def DEVICECHECK_SIGNING_KEY(self) -> str:
        """PEM of the team's DeviceCheck private key (the ``.p8`` file), or a path to it. Default:
        ``ATTESTATION_APPLE_RECEIPT_SIGNING_KEY`` (the same kind of Apple key signs both)."""
        value = str(_get("DEVICECHECK_SIGNING_KEY", "") or _get("APPLE_RECEIPT_SIGNING_KEY", ""))
        if value and "-----BEGIN" not in value and Path(value).is_file():
            return Path(value).read_text()
        return value

    @property
    def DEVICECHECK_KEY_ID(self) -> str:
        """Key id of that key (the JWT ``kid``). Default: ``ATTESTATION_APPLE_RECEIPT_KEY_ID``."""
        return str(_get("DEVICECHECK_KEY_ID", "") or _get("APPLE_RECEIPT_KEY_ID", ""))

    @property
    def DEVICECHECK_TIMEOUT(self) -> float:
        """Seconds per DeviceCheck request (connect and read). Default 5: it runs inside a token request."""
        return float(_get("DEVICECHECK_TIMEOUT", 5))

    @property
    def DEVICECHECK_ABUSE_BIT(self) -> int:
        """Which of the two bits "revoke and flag on Apple" sets: 0 (default) or 1."""
        return 1 if _int("DEVICECHECK_ABUSE_BIT", 0) == 1 else 0

    @property
    def DEVICECHECK_FLAG_SWEEP_SECONDS(self) -> int:
        """Period of the beat job that queues again the DeviceCheck flags still pending (a broker
        outage at the revocation, retries exhausted while Apple was down). Default 3600; 0 disables."""
        return _int("DEVICECHECK_FLAG_SWEEP_SECONDS", 3600)

    @property
    def DEVICECHECK_RETRY_AFTER(self) -> int:
        """``Retry-After`` seconds of the 503 a fail-closed client answers while Apple's API fails. Default 30."""
        return max(1, _int("DEVICECHECK_RETRY_AFTER", 30))

    # ------------------------------------------------------------------ Android
    @property
    def ANDROID_ROOT_CERTS(self) -> list[str]:
        """PEM file paths of the trusted Google hardware attestation roots, pinned by public
        key. Default: every ``attestation/certs/google/*.pem``. A non-empty value (list, or
        comma-separated string from the environment) replaces the shipped roots."""
        return _list("ANDROID_ROOT_CERTS", []) or sorted(str(p) for p in (CERTS_DIR / "google").glob("*.pem"))

    @property
    def ANDROID_ROOT_VALIDITY(self) -> str:
        """How the chain's root certificate is dated. ``presented`` (default): the root
        certificate the device sent must be valid at ``now`` (so chains ending in Google's
        2016 root fail after 2026-05-24, as OpenSSL says). ``pinned``: the root key is valid
        while any pinned certificate carrying it is (Java PKIX trust-anchor semantics; the
        2016 key is re-issued until 2042)."""
        value = str(_get("ANDROID_ROOT_VALIDITY", "presented")).strip().lower()
        return value if value in {"presented", "pinned"} else "presented"

    @property
    def ANDROID_REVOCATION_LIST_PATH(self) -> str:
        """A file in Google's status-list format read only while the database holds no list
        (a fresh install before the first refresh; the list itself is stored by the Celery
        task in ``AndroidRevocationList``, shared by every host). Default
        ``var/android-attestation-status.json``; until that exists, the shipped (empty)
        ``attestation/data/android-attestation-status.json``."""
        configured = _get("ANDROID_REVOCATION_LIST_PATH", "")
        if configured:
            return str(configured)

        return str(Path(django_settings.VAR_DIR) / "android-attestation-status.json")

    @property
    def ANDROID_REVOCATION_LIST_READ_PATH(self) -> str:
        """The seed file read while the database holds no list: the operator's file when there
        is one, else the shipped list."""
        path = Path(self.ANDROID_REVOCATION_LIST_PATH)
        if path.exists():
            return str(path)
        return str(Path(__file__).resolve().parent / "data" / "android-attestation-status.json")

    @property
    def ANDROID_REVOCATION_LIST_URL(self) -> str:
        """Where the Celery task fetches the status list. Default Google's published URL."""
        return str(_get("ANDROID_REVOCATION_LIST_URL", "https://android.googleapis.com/attestation/status"))

    @property
    def ANDROID_REVOCATION_REFRESH_SECONDS(self) -> int:
        """Period of the Celery beat job refreshing the status list. Default 3600; 0 disables it."""
        return _int("ANDROID_REVOCATION_REFRESH_SECONDS", 3600)

    @property
    def ANDROID_HTTP_TIMEOUT(self) -> float:
        """Seconds for each call to Google (status list, OAuth token, decodeIntegrityToken). Default 10."""
        return float(_get("ANDROID_HTTP_TIMEOUT", 10))

    @property
    def PLAY_INTEGRITY_API_BASE_URL(self) -> str:
        """Base URL of the Play Integrity server API. Default https://playintegrity.googleapis.com."""
        return str(_get("PLAY_INTEGRITY_API_BASE_URL", "https://playintegrity.googleapis.com")).rstrip("/")

    @property
    def PLAY_INTEGRITY_RETRY_AFTER(self) -> int:
        """``Retry-After`` seconds of the 503 the token endpoint answers while Google's Play Integrity
        API fails (``integrity_api_unavailable``: no failure of the device, none counted). Default 30."""
        return max(1, _int("PLAY_INTEGRITY_RETRY_AFTER", 30))

    @property
    def PLAY_INTEGRITY_DECODED_WITHIN(self) -> int:
        """Seconds a genuine decode (a verdict that passed, naming only registered signing
        certificates) shows the credentials work for its package. Google answers 403 "not
        authorized to decode" both to another app's token (the device's choice) and to every token
        when the service account is of the wrong Cloud project: it is ``integrity_token_invalid``
        (counted) while a process decoded a genuine token of the package within this many
        seconds, else ``integrity_api_unavailable`` (503, logged with the fix). Default 600."""
        return max(1, _int("PLAY_INTEGRITY_DECODED_WITHIN", 600))

    @property
    def PLAY_INTEGRITY_TOKEN_URI(self) -> str:
        """OAuth 2.0 token endpoint for the service-account JWT grant (RFC 7523). Default:
        the credentials file's ``token_uri``, else https://oauth2.googleapis.com/token."""
        return str(_get("PLAY_INTEGRITY_TOKEN_URI", ""))

    @property
    def PLAY_INTEGRITY_CREDENTIALS(self) -> str:
        """Service-account credentials for ``decodeIntegrityToken``: a JSON key file path or
        the JSON itself. Default empty: standard tokens are then refused, as
        ``integrity_token_invalid`` (counted) for an app with Play keys (it decodes classic
        tokens: a device must not turn its failures into outages by sending the other kind),
        else as ``integrity_api_unavailable`` (nothing can be decoded: a configuration outage)."""
        return str(_get("PLAY_INTEGRITY_CREDENTIALS", ""))

    @property
    def PLAY_INTEGRITY_MAX_AGE(self) -> int:
        """Seconds a verdict's ``timestampMillis`` may lie in the past. Default 300 (the
        challenge lifetime); a timestamp more than 60 s in the future is refused too."""
        return _int("PLAY_INTEGRITY_MAX_AGE", 300)

    @property
    def PLAY_INTEGRITY_ALLOW_TESTING_RESPONSES(self) -> bool:
        """Accept verdicts with ``testingDetails.isTestingResponse`` (license testers). Default off."""
        return _bool("PLAY_INTEGRITY_ALLOW_TESTING_RESPONSES", False)


app_settings = AppSettings()
