"""Apple's DeviceCheck server API: two bits per device and developer team, kept by Apple
across app reinstalls ("Accessing and modifying per-device data", Apple Developer
documentation, DeviceCheck).

The app calls ``DCDevice.current.generateToken`` and sends the ephemeral token (base64);
the server ``POST``s JSON to Apple:

* ``/v1/validate_device_token``: ``{device_token, transaction_id, timestamp}`` -> 200;
* ``/v1/query_two_bits``: same body -> 200 ``{"bit0": bool, "bit1": bool,
  "last_update_time": "YYYY-MM"}``, or 200 with the text ``Bit State Not Found`` when the
  bits were never set for this device;
* ``/v1/update_two_bits``: same body plus ``bit0`` and/or ``bit1`` (booleans) -> 200.

``timestamp`` is the server's UTC time in milliseconds since the epoch; ``transaction_id``
a unique id of ours. Each request carries ``Authorization: Bearer <JWT>``: ES256 with the
team's DeviceCheck private key (the ``.p8`` file of a key with DeviceCheck enabled, the
same kind of key that signs App Attest receipt requests), header ``kid`` = key id, claims
``iss`` = team id, ``iat``. Production apps talk to ``https://api.devicecheck.apple.com``,
development builds to ``https://api.development.devicecheck.apple.com``.

Apple's answers besides 200 (same document): 400 with a text saying what is wrong (``Missing
or incorrectly formatted device token payload``, bad bits, bad timestamp, bad authorization
token), 401 (``Unable to verify authorization token``), 403, 405, 429 (too many requests),
500 and 503. A refused *device token* is the app's evidence failing
(``DeviceTokenInvalid``); everything else — network errors, timeouts, redirects, 401/403
(our key), 429, 5xx, an oversized or unreadable answer — is ``DeviceCheckUnavailable``: the
caller degrades as the client's policy says. No other exception leaves this module.

Pure but for the HTTP session and the clock, both injected.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

PRODUCTION_BASE_URL = "https://api.devicecheck.apple.com"
DEVELOPMENT_BASE_URL = "https://api.development.devicecheck.apple.com"
BIT_STATE_NOT_FOUND = "Bit State Not Found"
MAX_RESPONSE_BYTES = 8 * 1024  # Apple answers a few dozen bytes
MAX_TOKEN_CHARS = 16 * 1024  # real tokens are about 2-3 KB of base64
_BASE64 = re.compile(r"[A-Za-z0-9+/=_-]+")
_MONTH = re.compile(r"\d{4}-\d{2}")


class DeviceCheckError(Exception):
    """Every failure of a DeviceCheck call; ``kind`` is a short stable word for events and metrics."""

    kind = "error"

    def __init__(self, detail: str, *, status: int | None = None):
        super().__init__(detail)
        self.detail = detail
        self.status = status


class DeviceTokenInvalid(DeviceCheckError):
    """The device token is malformed, or Apple refused it (400 about the device token)."""

    kind = "token_invalid"


class DeviceCheckUnavailable(DeviceCheckError):
    """Apple's service cannot answer usefully now (or our key is refused): not the app's fault."""

    kind = "unavailable"


@dataclass(frozen=True)
class TwoBits:
    """The per-device state; ``found`` False is Apple's "Bit State Not Found" (never set)."""

    found: bool
    bit0: bool = False
    bit1: bool = False
    last_update_time: str | None = None  # YYYY-MM

    def bit(self, index: int) -> bool:
        return self.bit1 if index == 1 else self.bit0

    def as_json(self) -> dict[str, Any]:
        return {"found": self.found, "bit0": self.bit0, "bit1": self.bit1, "last_update_time": self.last_update_time}


def check_token_form(token: str) -> None:
    """The device token as the app sends it: base64 text of bounded length (``DeviceTokenInvalid``)."""
    if not token or len(token) > MAX_TOKEN_CHARS or not _BASE64.fullmatch(token):
        raise DeviceTokenInvalid("device token is not base64 text of a plausible length")


class DeviceCheckClient:
    """One team's calls to one DeviceCheck host. ``clock`` and ``session`` are injectable."""

    def __init__(self, *, team_id: str, key_id: str, signing_key_pem: str, base_url: str, timeout: float = 5.0,
                 session: requests.Session | None = None, clock: Callable[[], dt.datetime] | None = None,
                 transaction_id: Callable[[], str] | None = None):
        self.team_id, self.key_id, self.signing_key_pem = team_id, key_id, signing_key_pem
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.transaction_id = transaction_id or (lambda: str(uuid.uuid4()))

    @property
    def configured(self) -> bool:
        return bool(self.team_id and self.key_id and self.signing_key_pem and self.base_url)

    def authorization(self, now: dt.datetime) -> str:
        """The ES256 JWT: header ``kid``, claims ``iss`` (team id) and ``iat``."""
        try:
            key = ECKey.import_key(self.signing_key_pem)
            return jwt.encode({"alg": "ES256", "kid": self.key_id}, {"iss": self.team_id, "iat": int(now.timestamp())},
                              key, algorithms=["ES256"])
        except (JoseError, ValueError, TypeError) as exc:
            raise DeviceCheckUnavailable(f"the DeviceCheck signing key is unusable: {type(exc).__name__}") from exc

    # ------------------------------------------------------------------ the three calls
    def validate_device_token(self, token: str) -> None:
        """Apple confirms the token comes from a genuine Apple device running an app of this team."""
        self._call("/v1/validate_device_token", token, {})

    def query_two_bits(self, token: str) -> TwoBits:
        return _two_bits(self._call("/v1/query_two_bits", token, {}))

    def update_two_bits(self, token: str, *, bit0: bool | None = None, bit1: bool | None = None) -> None:
        """Set one or both bits (a bit left None keeps its value at Apple)."""
        bits = {name: value for name, value in (("bit0", bit0), ("bit1", bit1)) if value is not None}
        if not bits:
            raise ValueError("update_two_bits needs bit0 or bit1")
        self._call("/v1/update_two_bits", token, bits)

    # ------------------------------------------------------------------ transport
    def _call(self, path: str, token: str, extra: dict[str, bool]) -> bytes:
        check_token_form(token)
        if not self.configured:
            raise DeviceCheckUnavailable("DeviceCheck is not configured (team id, key id, signing key, base URL)")
        now = self.clock()
        body = {"device_token": token, "transaction_id": self.transaction_id(),
                "timestamp": int(now.timestamp() * 1000), **extra}
        headers = {"Authorization": f"Bearer {self.authorization(now)}", "Content-Type": "application/json"}
        try:
            with self.session.post(f"{self.base_url}{path}", data=json.dumps(body), headers=headers,
                                   timeout=self.timeout, allow_redirects=False, stream=True) as response:
                payload = _read_bounded(response)
                status = response.status_code
        except requests.RequestException as exc:
            raise DeviceCheckUnavailable(f"{type(exc).__name__} calling {path}") from exc
        _judge_status(status, payload, path)
        return payload


def _read_bounded(response: requests.Response) -> bytes:
    received = bytearray()
    for chunk in response.iter_content(4096):
        received.extend(chunk)
        if len(received) > MAX_RESPONSE_BYTES:
            raise DeviceCheckUnavailable("DeviceCheck answer larger than expected", status=response.status_code)
    return bytes(received)


def _judge_status(status: int, payload: bytes, path: str) -> None:
    if status == 200:
        return
    text = payload[:200].decode("utf-8", "replace").strip()
    if status == 400 and "device token" in text.lower():
        raise DeviceTokenInvalid(f"Apple refused the device token ({text})", status=status)
    raise DeviceCheckUnavailable(f"{path} answered HTTP {status} ({text or 'no body'})", status=status)


def _two_bits(payload: bytes) -> TwoBits:
    """A query answer: Apple's JSON, or the "Bit State Not Found" text."""
    text = payload.decode("utf-8", "replace").strip()
    if text == BIT_STATE_NOT_FOUND:
        return TwoBits(found=False)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DeviceCheckUnavailable("query_two_bits answered something that is not JSON") from exc
    if not isinstance(data, dict):
        raise DeviceCheckUnavailable("query_two_bits answered JSON that is not an object")
    bit0, bit1, month = data.get("bit0", False), data.get("bit1", False), data.get("last_update_time")
    if not isinstance(bit0, bool) or not isinstance(bit1, bool):
        raise DeviceCheckUnavailable("query_two_bits answered bits that are not booleans")
    if month is not None and not (isinstance(month, str) and _MONTH.fullmatch(month)):
        raise DeviceCheckUnavailable("query_two_bits answered a last_update_time that is not YYYY-MM")
    return TwoBits(found=True, bit0=bit0, bit1=bit1, last_update_time=month)
