"""Client of Google's Play Integrity server API, for standard-request tokens.

Standard-request tokens can only be decoded by Google
("Make a standard API request" step 3, developer.android.com/google/play/integrity/standard):
``POST {base}/v1/{packageName}:decodeIntegrityToken`` with ``{"integrity_token": ...}``
and an OAuth 2.0 bearer token for scope ``https://www.googleapis.com/auth/playintegrity``.
The bearer comes from the service-account JWT grant (RFC 7523, Google's "Using OAuth
2.0 for Server to Server Applications"): an RS256 JWT ``{iss: client_email, scope, aud:
token_uri, iat, exp}`` posted to the token URI as
``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``.

Network and quota failures are ``integrity_api_unavailable``; Google refusing the token
itself (HTTP 400) is ``integrity_token_invalid``.
"""

from __future__ import annotations

import datetime as dt
import json
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
from .play_integrity import IntegrityPolicy, IntegrityVerdict, check_verdict

SCOPE = "https://www.googleapis.com/auth/playintegrity"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME = 3600
REFRESH_MARGIN = dt.timedelta(seconds=60)

_token_cache: dict[tuple[str, str], tuple[str, dt.datetime]] = {}
_token_lock = threading.Lock()


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
        self, account: ServiceAccount, base_url: str, timeout: float = 10.0, session: requests.Session | None = None
    ):
        self.account = account
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    @classmethod
    def from_settings(cls) -> PlayIntegrityClient:
        account = ServiceAccount.from_setting(
            app_settings.PLAY_INTEGRITY_CREDENTIALS, app_settings.PLAY_INTEGRITY_TOKEN_URI
        )
        return cls(account, app_settings.PLAY_INTEGRITY_API_BASE_URL, app_settings.ANDROID_HTTP_TIMEOUT)

    def _post(self, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.post(url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise AttestationError(Reason.INTEGRITY_API_UNAVAILABLE, f"{type(exc).__name__} calling {url}") from exc

    def access_token(self, now: dt.datetime) -> str:
        """A cached bearer, exchanged again shortly before it expires."""
        key = (self.account.token_uri, self.account.client_email)
        with _token_lock:
            cached = _token_cache.get(key)
        if cached and cached[1] - REFRESH_MARGIN > now:
            return cached[0]
        form = {"grant_type": JWT_BEARER, "assertion": self.account.assertion(now)}
        response = self._post(self.account.token_uri, data=form)
        body = _json(response)
        token = body.get("access_token")
        if response.status_code != 200 or not isinstance(token, str):
            raise AttestationError(Reason.INTEGRITY_API_UNAVAILABLE, f"token exchange failed ({response.status_code})")
        expires = now + dt.timedelta(seconds=int(body.get("expires_in", 3600)))
        with _token_lock:
            _token_cache[key] = (token, expires)
        return token

    def decode(self, package_name: str, integrity_token: str, now: dt.datetime) -> dict[str, Any]:
        url = f"{self.base_url}/v1/{quote(package_name, safe='')}:decodeIntegrityToken"
        headers = {"Authorization": f"Bearer {self.access_token(now)}"}
        response = self._post(url, json={"integrity_token": integrity_token}, headers=headers)
        if response.status_code == 401:
            with _token_lock:
                _token_cache.pop((self.account.token_uri, self.account.client_email), None)
        if response.status_code == 400:
            raise AttestationError(Reason.INTEGRITY_TOKEN_INVALID, "Google refused the integrity token")
        if response.status_code != 200:
            raise AttestationError(
                Reason.INTEGRITY_API_UNAVAILABLE, f"decodeIntegrityToken HTTP {response.status_code}"
            )
        verdict = _json(response).get("tokenPayloadExternal")
        if not isinstance(verdict, dict):
            raise AttestationError(Reason.INTEGRITY_API_UNAVAILABLE, "decodeIntegrityToken returned no verdict")
        return verdict


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def clear_token_cache() -> None:
    with _token_lock:
        _token_cache.clear()


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
    verdict = (client or PlayIntegrityClient.from_settings()).decode(policy.package_name, token.strip(), now)
    return check_verdict(verdict, policy=policy, expected=expected_request_hash, kind="request_hash", now=now)
