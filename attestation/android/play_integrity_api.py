"""Client of Google's Play Integrity server API, for standard-request tokens.

Standard-request tokens can only be decoded by Google
("Make a standard API request" step 3, developer.android.com/google/play/integrity/standard):
``POST {base}/v1/{packageName}:decodeIntegrityToken`` with ``{"integrity_token": ...}``
and an OAuth 2.0 bearer token for scope ``https://www.googleapis.com/auth/playintegrity``.
The bearer comes from the service-account JWT grant (RFC 7523, Google's "Using OAuth
2.0 for Server to Server Applications"): an RS256 JWT ``{iss: client_email, scope, aud:
token_uri, iat, exp}`` posted to the token URI as
``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``.

Which refusals are the device's (``integrity_token_invalid``, counted) and which are outages
(``integrity_api_unavailable``: 503, counted in no streak) is read from Google's error body
(``google_errors``, with the sources). One answer is both: 403 "not authorized to decode" is
what a device gets for another app's token, and what every token gets when our service account
is of another Cloud project. It is the device's while any process has decoded a genuine token
of the same package (its verdict passed, signed with a registered certificate) with the same
credentials within ``ATTESTATION_PLAY_INTEGRITY_DECODED_WITHIN`` seconds (``decodes_seen``:
this process's memory and the shared cache's): our configuration then
demonstrably works, and a device can neither make that so nor undo it. Otherwise it is an
outage, logged with what to fix: a misconfiguration never logs out every Android user, and a
device chooses an outage only where no genuine token decoded lately.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from ..app_settings import app_settings
from ..errors import AttestationError, Reason
from . import decodes_seen
from .google_errors import Fault, GoogleError, classify
from .play_integrity import IntegrityPolicy, IntegrityVerdict, check_verdict

SCOPE = "https://www.googleapis.com/auth/playintegrity"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME = 3600
REFRESH_MARGIN = dt.timedelta(seconds=60)
DECODED_WITHIN = dt.timedelta(seconds=600)

logger = logging.getLogger("vigil.play_integrity")
_token_cache: dict[tuple[str, str], tuple[str, dt.datetime]] = {}
_lock = threading.Lock()
#: How each refusal is answered once its fault is decided.
_REASONS = {
    Fault.TOKEN: Reason.INTEGRITY_TOKEN_INVALID,
    Fault.CONFIGURATION: Reason.INTEGRITY_API_UNAVAILABLE,
    Fault.GOOGLE: Reason.INTEGRITY_API_UNAVAILABLE,
}
_LOG_LEVELS = {Fault.CONFIGURATION: logging.ERROR, Fault.GOOGLE: logging.WARNING}


@dataclass(frozen=True)
class ServiceAccount:
    client_email: str
    private_key_pem: str
    private_key_id: str
    token_uri: str

    @classmethod
    def from_json(cls, info: dict[str, Any], token_uri: str = "") -> ServiceAccount:
        try:
            return cls(
                client_email=str(info["client_email"]),
                private_key_pem=str(info["private_key"]),
                private_key_id=str(info.get("private_key_id", "")),
                token_uri=token_uri or str(info.get("token_uri") or DEFAULT_TOKEN_URI),
            )
        except (KeyError, TypeError) as exc:
            raise AttestationError(
                Reason.INTEGRITY_API_UNAVAILABLE, "service-account credentials are incomplete"
            ) from exc

    @classmethod
    def from_setting(cls, value: str, token_uri: str = "") -> ServiceAccount:
        """A JSON key file path, or the JSON itself."""
        text = value.strip()
        if not text:
            raise AttestationError(Reason.INTEGRITY_API_UNAVAILABLE, "no Play Integrity service account configured")
        try:
            info = json.loads(text if text.startswith("{") else Path(text).read_text())
        except (OSError, ValueError) as exc:
            raise AttestationError(Reason.INTEGRITY_API_UNAVAILABLE, "service-account credentials unreadable") from exc
        return cls.from_json(info, token_uri)

    def assertion(self, now: dt.datetime) -> str:
        """The signed RS256 JWT of the JWT-bearer grant."""
        iat = int(now.timestamp())
        claims = {
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME,
        }
        header = {"alg": "RS256", "typ": "JWT"}
        if self.private_key_id:
            header["kid"] = self.private_key_id
        return jwt.encode(header, claims, RSAKey.import_key(self.private_key_pem), algorithms=["RS256"])


class PlayIntegrityClient:
    """``decode(package_name, token, now)`` -> the ``tokenPayloadExternal`` verdict."""

    def __init__(
        self,
        account: ServiceAccount,
        base_url: str,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        decoded_within: dt.timedelta = DECODED_WITHIN,
    ):
        self.account = account
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.decoded_within = decoded_within

    @classmethod
    def from_settings(cls) -> PlayIntegrityClient:
        account = ServiceAccount.from_setting(
            app_settings.PLAY_INTEGRITY_CREDENTIALS, app_settings.PLAY_INTEGRITY_TOKEN_URI
        )
        return cls(
            account,
            app_settings.PLAY_INTEGRITY_API_BASE_URL,
            app_settings.ANDROID_HTTP_TIMEOUT,
            decoded_within=dt.timedelta(seconds=app_settings.PLAY_INTEGRITY_DECODED_WITHIN),
        )

    def _post(self, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.post(url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise AttestationError(Reason.INTEGRITY_API_UNAVAILABLE, f"{type(exc).__name__} calling {url}") from exc

    def access_token(self, now: dt.datetime) -> str:
        """A cached bearer, exchanged again shortly before it expires."""
        key = (self.account.token_uri, self.account.client_email)
        with _lock:
            cached = _token_cache.get(key)
        if cached and cached[1] - REFRESH_MARGIN > now:
            return cached[0]
        form = {"grant_type": JWT_BEARER, "assertion": self.account.assertion(now)}
        response = self._post(self.account.token_uri, data=form)
        body = _json(response)
        token = body.get("access_token")
        if response.status_code != 200 or not isinstance(token, str):
            _log_exchange_refused(response.status_code, body, self.account)
            raise AttestationError(Reason.INTEGRITY_API_UNAVAILABLE, f"token exchange failed ({response.status_code})")
        expires = now + dt.timedelta(seconds=_lifetime(body.get("expires_in")))
        with _lock:
            _token_cache[key] = (token, expires)
        return token

    def decode(self, package_name: str, integrity_token: str, now: dt.datetime) -> dict[str, Any]:
        url = f"{self.base_url}/v1/{quote(package_name, safe='')}:decodeIntegrityToken"
        headers = {"Authorization": f"Bearer {self.access_token(now)}"}
        response = self._post(url, json={"integrity_token": integrity_token}, headers=headers)
        if response.status_code == 200:
            return _verdict(_json(response))
        if response.status_code == 401:
            with _lock:
                _token_cache.pop((self.account.token_uri, self.account.client_email), None)
        raise self._refusal(classify(response.status_code, _json(response)), package_name, now)

    def _decoding(self, package_name: str) -> tuple[str, str, str]:
        return (self.base_url, self.account.client_email, package_name)

    def decoded_genuine(self, package_name: str, now: dt.datetime) -> None:
        """A token of our app (its verdict passed, naming only registered signing certificates)
        decoded with these credentials: they work for ``package_name``. Only a build signed with
        the app's key can get here, so no device makes refusals count by sending a token that a
        wrongly configured service account happens to decode."""
        decodes_seen.remember(self._decoding(package_name), now, self.decoded_within)

    def decodes(self, package_name: str, now: dt.datetime) -> bool:
        """Whether any process decoded a genuine token of ``package_name`` with these
        credentials within ``decoded_within`` of ``now``: our configuration works for it."""
        last = decodes_seen.last(self._decoding(package_name), now, self.decoded_within)
        return last is not None and now - last <= self.decoded_within

    def _refusal(self, error: GoogleError, package_name: str, now: dt.datetime) -> AttestationError:
        fault, cause = self._decide(error, package_name, now)
        if fault in _LOG_LEVELS:
            _log(fault, error, cause, package_name, self.account.client_email)
        return AttestationError(_REASONS[fault], f"decodeIntegrityToken refused: {cause}")

    def _decide(self, error: GoogleError, package_name: str, now: dt.datetime) -> tuple[Fault, str]:
        """A refusal the token or our credentials may cause is the token's while ours work."""
        if error.fault is not Fault.TOKEN_OR_CONFIGURATION:
            return error.fault, error.cause
        if self.decodes(package_name, now):
            return Fault.TOKEN, f"{error.cause}, while these credentials decode genuine tokens of this package"
        window = int(self.decoded_within.total_seconds())
        return Fault.CONFIGURATION, f"{error.cause}, and no genuine token of this package decoded in {window} s"


def _log(fault: Fault, error: GoogleError, cause: str, package_name: str, account: str) -> None:
    """What an operator reads: what failed, what to fix, and what devices get meanwhile."""
    logger.log(
        _LOG_LEVELS[fault],
        "Play Integrity: Google refused to decode a token of %s for service account %s (%s): %s. Google said: %r. "
        "Standard integrity tokens are answered 503 integrity_api_unavailable (counted against no device) meanwhile.",
        package_name, account, cause, error.fix or "on Google's side; it passes", error.message,
    )


def _log_exchange_refused(status: int, body: dict[str, Any], account: ServiceAccount) -> None:
    """RFC 6749 §5.2's error of the JWT-bearer grant (RFC 7523 §3.1: ``invalid_grant`` for an
    assertion Google does not accept, e.g. a deleted or disabled key), for an operator."""
    logger.error(
        "Play Integrity: %s refused the service account %s (key %s) a bearer: HTTP %s %s %r. Check that the key "
        "of ATTESTATION_PLAY_INTEGRITY_CREDENTIALS still exists and is enabled (IAM > Service accounts > Keys) "
        "and that this host's clock is right. Standard integrity tokens are answered 503 integrity_api_unavailable "
        "(counted against no device) meanwhile.",
        account.token_uri, account.client_email, account.private_key_id or "-", status,
        body.get("error", "no error code"), body.get("error_description", ""),
    )


def _verdict(body: dict[str, Any]) -> dict[str, Any]:
    verdict = body.get("tokenPayloadExternal")
    if not isinstance(verdict, dict):
        raise AttestationError(Reason.INTEGRITY_API_UNAVAILABLE, "decodeIntegrityToken returned no verdict")
    return verdict


def _json(response: requests.Response) -> dict[str, Any]:
    """The body's JSON object, or ``{}``: a body that is not one (a proxy's page, JSON nested
    too deep to parse) is read as Google's unreadable answer, never raised as a 500."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}


def _lifetime(expires_in: Any) -> int:
    """The bearer's ``expires_in`` (RFC 6749 §5.1; Google's are 3599 s), within 0 to an hour; one
    that is no whole number of seconds is taken as the hour a service-account bearer lives."""
    try:
        seconds = int(expires_in)
    except (TypeError, ValueError, OverflowError):
        return ASSERTION_LIFETIME
    return min(max(seconds, 0), ASSERTION_LIFETIME)


def clear_caches() -> None:
    """Forget the cached bearers and the decodes this process saw (tests; a fresh process)."""
    with _lock:
        _token_cache.clear()
    decodes_seen.forget_local()


def verify_standard_token(
    token: str,
    *,
    policy: IntegrityPolicy,
    expected_request_hash: str,
    now: dt.datetime,
    client: PlayIntegrityClient | None = None,
) -> IntegrityVerdict:
    """Decode a standard-request token through Google and check it against ``expected_request_hash``."""
    if not isinstance(token, str) or not token.strip() or len(token) > 64 * 1024:
        raise AttestationError(Reason.MALFORMED_TOKEN, "empty or oversized integrity token")
    client = client or PlayIntegrityClient.from_settings()
    verdict = client.decode(policy.package_name, token.strip(), now)
    result = check_verdict(verdict, policy=policy, expected=expected_request_hash, kind="request_hash", now=now)
    if policy.signing_cert_digests and _names_certificates(result.raw):  # each one matched a registered digest
        client.decoded_genuine(policy.package_name, now)
    return result


def _names_certificates(verdict: dict[str, Any]) -> bool:
    app = verdict.get("appIntegrity")
    return isinstance(app, dict) and bool(app.get("certificateSha256Digest"))
