"""Play Integrity: decode classic tokens locally and judge any verdict against a policy.

Classic requests ("Make a classic API request", developer.android.com/google/play/integrity/classic):
the token is a JWE (``alg`` A256KW, ``enc`` A256GCM) under the app's AES-256 decryption
key, wrapping a JWS (``alg`` ES256) by Google's EC P-256 verification key; both keys come
base64-encoded from Play Console. Standard requests are decoded by Google's
``decodeIntegrityToken`` (see ``play_integrity_api``). Either way the verdict
(``tokenPayloadExternal``) is then checked, in the order of Google's "Integrity verdicts" page:

1. ``requestDetails.requestPackageName``                       -> ``package_mismatch``
2. ``requestDetails.nonce`` (classic) / ``requestHash`` (std)  -> ``nonce_mismatch`` / ``request_hash_mismatch``
3. ``requestDetails.timestampMillis`` freshness (number or string) -> ``verdict_stale``
4. ``testingDetails.isTestingResponse`` (refused in production)  -> ``testing_response``
5. ``appIntegrity.appRecognitionVerdict`` == PLAY_RECOGNIZED   -> ``app_not_recognized``
6. ``appIntegrity.packageName`` / ``certificateSha256Digest`` -> ``package_mismatch`` / ``signing_certificate_mismatch``
7. ``deviceIntegrity.deviceRecognitionVerdict`` vs strong|device|basic -> ``integrity_verdict_insufficient``
8. ``accountDetails.appLicensingVerdict`` == LICENSED          -> ``unlicensed``
9. ``environmentDetails.appAccessRiskVerdict`` refused apps    -> ``app_access_risk``

Steps 1-4 and 6 (authenticity and consistency) are always enforced. Steps 5 and 7-9 judge
facts; ``IntegrityPolicy`` may turn each off (``require_play_recognized=False``,
``min_level=None``, ``require_licensed=False``, no refused apps) and the verdict's facts are
returned for the client's device-health policy to grade (``attestation/grading.py``).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey

from ..encoding import b64decode_any
from ..errors import AttestationError, Reason
from .digests import normalise_digest

LEVELS = {
    "strong": {"MEETS_STRONG_INTEGRITY"},
    "device": {"MEETS_STRONG_INTEGRITY", "MEETS_DEVICE_INTEGRITY"},
    "basic": {"MEETS_STRONG_INTEGRITY", "MEETS_DEVICE_INTEGRITY", "MEETS_BASIC_INTEGRITY"},
}
MAX_TOKEN_LEN = 64 * 1024
FUTURE_SKEW = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class IntegrityPolicy:
    package_name: str
    signing_cert_digests: tuple[bytes, ...] | None = None
    min_level: str | None = "device"  # None: no device recognition level is refused here
    require_play_recognized: bool = True
    require_licensed: bool = True
    allow_testing: bool = False
    max_age: dt.timedelta = dt.timedelta(seconds=300)
    refused_apps_detected: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.min_level is not None and self.min_level not in LEVELS:
            raise ValueError(f"unknown integrity level {self.min_level!r}")


@dataclass(frozen=True)
class IntegrityVerdict:
    """The verified verdict and the facts later risk checks use."""

    raw: dict[str, Any]
    timestamp: dt.datetime
    device_verdicts: tuple[str, ...]
    facts: dict[str, Any] = field(default_factory=dict)


def _b64decode(value: str | bytes, what: str) -> bytes:
    try:
        return b64decode_any(value)
    except AttestationError as exc:
        raise AttestationError(Reason.MALFORMED_BASE64, f"{what} is not base64") from exc


def load_play_keys(decryption_key_b64: str | bytes, verification_key_b64: str | bytes) -> tuple[OctKey, ECKey]:
    """Play Console's keys as shown there: base64 raw AES-256 key, base64 DER SPKI (EC P-256)."""
    return play_keys_from_raw(
        _b64decode(decryption_key_b64, "decryption key"), _b64decode(verification_key_b64, "verification key")
    )


def play_keys_from_raw(decryption_key: bytes, verification_key_der: bytes) -> tuple[OctKey, ECKey]:
    """The decoded keys (as ``RegisteredApp`` stores them): 32 AES bytes, DER SPKI."""
    if len(decryption_key) != 32:
        raise AttestationError(Reason.MALFORMED_BASE64, "decryption key is not 32 bytes")
    try:
        ec_key = ECKey.import_key(verification_key_der)
    except (ValueError, TypeError, JoseError) as exc:
        raise AttestationError(Reason.MALFORMED_BASE64, "verification key is not an EC public key") from exc
    if ec_key.curve_name != "P-256" or ec_key.is_private:
        raise AttestationError(Reason.MALFORMED_BASE64, "verification key is not a P-256 public key")
    return OctKey.import_key(decryption_key), ec_key


def decode_classic_token(token: str, decryption_key: OctKey, verification_key: ECKey) -> dict[str, Any]:
    """JWE A256KW/A256GCM decrypt, then JWS ES256 verify; the payload is the verdict JSON."""
    token = token.strip() if isinstance(token, str) else ""
    if not token or len(token) > MAX_TOKEN_LEN or token.count(".") != 4:
        raise AttestationError(Reason.MALFORMED_TOKEN, "not a compact JWE")
    try:
        inner = jwe.decrypt_compact(token, decryption_key, algorithms=["A256KW", "A256GCM"]).plaintext
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise AttestationError(Reason.INTEGRITY_TOKEN_INVALID, f"JWE does not decrypt: {exc}") from exc
    try:
        payload = jws.deserialize_compact(inner or b"", verification_key, algorithms=["ES256"]).payload
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise AttestationError(Reason.INTEGRITY_TOKEN_INVALID, f"JWS does not verify: {exc}") from exc
    return parse_verdict_json(payload)


def parse_verdict_json(payload: bytes | str) -> dict[str, Any]:
    try:
        verdict = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttestationError(Reason.MALFORMED_TOKEN, "verdict is not JSON") from exc
    if not isinstance(verdict, dict):
        raise AttestationError(Reason.MALFORMED_TOKEN, "verdict is not a JSON object")
    return verdict


def _section(verdict: dict[str, Any], name: str) -> dict[str, Any]:
    value = verdict.get(name, {})
    if not isinstance(value, dict):
        raise AttestationError(Reason.MALFORMED_TOKEN, f"{name} is not an object")
    return value


def _timestamp(value: Any) -> dt.datetime:
    """``timestampMillis`` is int64-as-string in Google's schema but a number in real payloads."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise AttestationError(Reason.MALFORMED_TOKEN, "timestampMillis is missing")
    try:
        millis = int(value)
        return dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise AttestationError(Reason.MALFORMED_TOKEN, "timestampMillis is not an integer") from exc


def _strip_pad(value: str) -> str:
    return value.rstrip("=")


def _check_request(
    request: dict[str, Any], policy: IntegrityPolicy, expected: str, kind: str, now: dt.datetime
) -> dt.datetime:
    """Steps 1-3."""
    if request.get("requestPackageName") != policy.package_name:
        raise AttestationError(Reason.PACKAGE_MISMATCH, "requestPackageName is not the registered package")
    if kind == "nonce":
        got = request.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(_strip_pad(got).encode(), _strip_pad(expected).encode()):
            raise AttestationError(Reason.NONCE_MISMATCH, "nonce is not the one bound to this request")
    else:
        got = request.get("requestHash")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), expected.encode()):
            raise AttestationError(Reason.REQUEST_HASH_MISMATCH, "requestHash is not the one bound to this request")
    issued = _timestamp(request.get("timestampMillis"))
    if now - issued > policy.max_age or issued - now > FUTURE_SKEW:
        raise AttestationError(Reason.VERDICT_STALE, f"verdict issued {issued.isoformat()}")
    return issued


def _check_app(app: dict[str, Any], policy: IntegrityPolicy) -> None:
    """Steps 5-6."""
    if policy.require_play_recognized and app.get("appRecognitionVerdict") != "PLAY_RECOGNIZED":
        raise AttestationError(Reason.APP_NOT_RECOGNIZED, f"appRecognitionVerdict {app.get('appRecognitionVerdict')}")
    if "packageName" in app and app["packageName"] != policy.package_name:
        raise AttestationError(Reason.PACKAGE_MISMATCH, "appIntegrity.packageName is not the registered package")
    if policy.signing_cert_digests is None:
        return
    if not policy.require_play_recognized and not _recognised(app) and "certificateSha256Digest" not in app:
        return  # UNEVALUATED: Google names no certificate, so there is nothing to contradict ours
    digests = app.get("certificateSha256Digest")
    try:
        attested = [normalise_digest(d) for d in digests] if isinstance(digests, list) else []
    except (ValueError, TypeError, AttributeError):
        attested = []
    ok = [any(hmac.compare_digest(a, r) for r in policy.signing_cert_digests) for a in attested]
    if not attested or not all(ok):
        raise AttestationError(Reason.SIGNING_CERT_MISMATCH, "certificateSha256Digest is not registered")


def _recognised(app: dict[str, Any]) -> bool:
    return app.get("appRecognitionVerdict") == "PLAY_RECOGNIZED"


def _device_verdicts(device: dict[str, Any]) -> tuple[str, ...]:
    values = device.get("deviceRecognitionVerdict") or []
    return tuple(v for v in values if isinstance(v, str)) if isinstance(values, list) else ()


def _check_device(device: dict[str, Any], policy: IntegrityPolicy) -> tuple[str, ...]:
    """Step 7: missing or empty deviceRecognitionVerdict means no integrity at all."""
    verdicts = _device_verdicts(device)
    if policy.min_level is not None and not LEVELS[policy.min_level] & set(verdicts):
        raise AttestationError(
            Reason.INTEGRITY_VERDICT_INSUFFICIENT, f"{list(verdicts)} does not meet {policy.min_level}"
        )
    return verdicts


def _facts(verdict: dict[str, Any], issued: dt.datetime, verdicts: tuple[str, ...]) -> dict[str, Any]:
    request, app = _section(verdict, "requestDetails"), _section(verdict, "appIntegrity")
    device, account = _section(verdict, "deviceIntegrity"), _section(verdict, "accountDetails")
    env = _section(verdict, "environmentDetails")
    risk = env.get("appAccessRiskVerdict") if isinstance(env.get("appAccessRiskVerdict"), dict) else {}
    return {
        "request_package_name": request.get("requestPackageName"),
        "request_kind": "nonce" if "nonce" in request else "request_hash",
        "timestamp": issued.isoformat(),
        "app_recognition_verdict": app.get("appRecognitionVerdict"),
        "app_version_code": app.get("versionCode"),
        "certificate_sha256_digests": app.get("certificateSha256Digest", []),
        "device_recognition_verdict": list(verdicts),
        "sdk_version": (device.get("deviceAttributes") or {}).get("sdkVersion"),
        "recent_device_activity": (device.get("recentDeviceActivity") or {}).get("deviceActivityLevel"),
        "app_licensing_verdict": account.get("appLicensingVerdict"),
        "play_protect_verdict": env.get("playProtectVerdict"),
        "apps_detected": list(risk.get("appsDetected", [])) if isinstance(risk, dict) else [],
        "is_testing_response": bool(_section(verdict, "testingDetails").get("isTestingResponse", False)),
    }


def check_verdict(
    verdict: dict[str, Any], *, policy: IntegrityPolicy, expected: str, kind: str, now: dt.datetime
) -> IntegrityVerdict:
    """Judge a decoded verdict. ``kind`` is ``"nonce"`` (classic) or ``"request_hash"`` (standard);
    ``expected`` is the value bound to this request (``RequestBinding.request_hash()``)."""
    if kind not in {"nonce", "request_hash"}:
        raise ValueError("kind must be 'nonce' or 'request_hash'")
    issued = _check_request(_section(verdict, "requestDetails"), policy, expected, kind, now)
    if _section(verdict, "testingDetails").get("isTestingResponse") is True and not policy.allow_testing:
        raise AttestationError(Reason.TESTING_RESPONSE, "a license-tester response is refused in production")
    _check_app(_section(verdict, "appIntegrity"), policy)
    verdicts = _check_device(_section(verdict, "deviceIntegrity"), policy)
    licensing = _section(verdict, "accountDetails").get("appLicensingVerdict")
    if policy.require_licensed and licensing != "LICENSED":
        raise AttestationError(Reason.UNLICENSED, f"appLicensingVerdict {licensing}")
    facts = _facts(verdict, issued, verdicts)
    risky = policy.refused_apps_detected & set(facts["apps_detected"])
    if risky:
        raise AttestationError(Reason.APP_ACCESS_RISK, f"apps detected: {sorted(risky)}")
    return IntegrityVerdict(raw=verdict, timestamp=issued, device_verdicts=verdicts, facts=facts)


def verify_classic_token(
    token: str, *, keys: tuple[OctKey, ECKey], policy: IntegrityPolicy, expected_nonce: str, now: dt.datetime
) -> IntegrityVerdict:
    """Decode a classic-request token locally (``keys`` from ``load_play_keys`` or
    ``play_keys_from_raw``) and check its verdict against ``expected_nonce``."""
    verdict = decode_classic_token(token, *keys)
    return check_verdict(verdict, policy=policy, expected=expected_nonce, kind="nonce", now=now)
