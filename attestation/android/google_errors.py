"""Whose failure a refused ``decodeIntegrityToken`` is, read from Google's error body.

A device chooses the integrity token it sends, and nothing else of the call: the package
name in the URL is its registered app's (``RegisteredApp.android_package_name``, picked by
the grant's client, never by the request), and the bearer, the Cloud project and the API's
settings are ours. A refusal only the token can cause is the device's failure
(``integrity_token_invalid``, counted); one the token cannot cause is an outage
(``integrity_api_unavailable``: a 503, counted in no streak), or a device could turn every
failure it likes into one by choosing it.

**Google's error model.** Google APIs answer a ``google.rpc.Status`` in JSON (AIP-193
"Errors"; ``google/rpc/status.proto``, ``code.proto``): ``{"error": {"code": 403, "status":
"PERMISSION_DENIED", "message": ..., "details": [...]}}``, where a
``type.googleapis.com/google.rpc.ErrorInfo`` detail is the machine-readable cause
(``reason`` unique within ``domain``; AIP-193 tells clients to rely on it, never on the
message). The domain ``googleapis.com`` is reserved for Service Infrastructure, whose checks
concern the consumer project and the credentials, never the request's payload: API disabled
(``SERVICE_DISABLED``), billing (``BILLING_DISABLED``), the project suspended or deleted
(``CONSUMER_SUSPENDED``, ``CONSUMER_INVALID``), VPC Service Controls (``SECURITY_POLICY_VIOLATED``), the access token
(``ACCESS_TOKEN_SCOPE_INSUFFICIENT``, ``ACCESS_TOKEN_EXPIRED``, ``ACCOUNT_STATE_INVALID``),
quota (``RATE_LIMIT_EXCEEDED``, ``RESOURCE_QUOTA_EXCEEDED``): ``google/api/error_reason.proto``
in googleapis/googleapis. IAM reports a missing permission as ``IAM_PERMISSION_DENIED`` in the
calling service's domain (google-gemini/gemini-cli#10440). The v1 error format adds a legacy
``errors: [{"domain", "reason", "message"}]`` list: ``accessNotConfigured`` (API disabled,
e.g. GoogleCloudPlatform/community#884), ``insufficientPermissions`` (scopes),
``rateLimitExceeded`` (google-gemini/gemini-cli#14831), ``forbidden`` (any 403, IAM's
"The caller does not have permission" with no ErrorInfo at all: google-gemini/gemini-cli#25760).

**What decodeIntegrityToken answers** (developer.android.com/google/play/integrity/standard
step 5; what public callers report):

* a token Google cannot decode: 400 ``INVALID_ARGUMENT`` "Integrity token cannot be decoded
  due to invalid arguments." (errors ``badRequest``): the device's. A package Play does not
  know is also 400 ``badRequest`` "App is not found." (googleapis/google-api-dotnet-client
  #2239), not a 404: ours in fact (a registration Play never had), but the same body as a bad
  token, so counted; it only happens to an app that never worked, before any session exists.
* a token minted for another Cloud project: 403 ``PERMISSION_DENIED`` "You are not authorized
  to decode the requested integrity token." (errors ``forbidden``, no ErrorInfo;
  1nikolas/play-integrity-checker-server-vercel#1), and "Application package name (...)
  provided by un-trusted source." for another app's, in the same shape. Google says exactly
  this for *every* token when our service account belongs to a project other than the one
  linked to the app in Play Console: the same body is the device's choice or our
  misconfiguration (``Fault.TOKEN_OR_CONFIGURATION``, decided by ``PlayIntegrityClient``:
  the device's only while our credentials demonstrably decode genuine tokens of this package).
* an expired or replayed standard token: no error is documented; public callers see a 200 with
  ``appRecognitionVerdict`` ``UNEVALUATED`` (rtr-net's ``PlayIntegrityDecodeResponse``), which
  the verdict checks refuse (counted).
* quota (``RESOURCE_EXHAUSTED``, 429) and Google's servers (5xx): outages. 401 is our bearer
  (dropped; the next call exchanges a new one). 404 cannot come from the token (the URL is
  ours): the base URL or the registered package name is wrong.

Google's own sample server (android/security-samples, PlayIntegrityAPI/node-server) treats
every error as "no verdict" without telling them apart.

``classify`` reads the body in the order AIP-193 ranks it: an ErrorInfo Vigil knows, then
the legacy ``errors[].reason``, then ``error.status`` (the ``google.rpc.Code``), and only for a
body it cannot read the HTTP status. Message text is never compared; it is only logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

SERVICE_INFRASTRUCTURE = "googleapis.com"
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"


class Fault(Enum):
    """Whose failure a refused decode is."""

    TOKEN = "token"  # only the token the device chose causes it: integrity_token_invalid, counted
    TOKEN_OR_CONFIGURATION = "token_or_configuration"  # another project's token, or our credentials'
    CONFIGURATION = "configuration"  # our project, service account or registration: an outage to fix
    GOOGLE = "google"  # quota, Google's servers: an outage that passes


@dataclass(frozen=True)
class Rule:
    fault: Fault
    fix: str = ""  # what an operator does about it (logged)


@dataclass(frozen=True)
class GoogleError:
    fault: Fault
    cause: str  # the structured fields that decided, e.g. "HTTP 403 ErrorInfo SERVICE_DISABLED"
    fix: str
    message: str  # Google's words, for the log only


ENABLE_API = (
    "enable the Google Play Integrity API (playintegrity.googleapis.com) in the Cloud project of the "
    "service account of ATTESTATION_PLAY_INTEGRITY_CREDENTIALS (APIs & Services > Library)"
)
SCOPES = (
    "the access token lacks the https://www.googleapis.com/auth/playintegrity scope: check "
    "ATTESTATION_PLAY_INTEGRITY_TOKEN_URI and the credentials' token_uri"
)
QUOTA = "request a higher daily quota for the Play Integrity API (Play Console > App integrity)"
WRONG_PROJECT = (
    "check that the service account of ATTESTATION_PLAY_INTEGRITY_CREDENTIALS belongs to the Cloud "
    "project linked to this package in Play Console (Release > App integrity > Play Integrity API); "
    "a device sending another app's token gets the same answer, so it counts against the device only "
    "while these credentials decode genuine tokens of this package (ATTESTATION_PLAY_INTEGRITY_DECODED_WITHIN)"
)
PROJECT_STATE = "the service account's Cloud project is suspended or deleted: use a key of the linked project"

#: ``ErrorInfo.reason`` in the ``googleapis.com`` domain (``google/api/error_reason.proto``).
#: Any other reason of that domain is configuration too: its checks concern the consumer project,
#: the credentials, quota and policy, never the request's payload.
INFRASTRUCTURE_REASONS: dict[str, Rule] = {
    "SERVICE_DISABLED": Rule(Fault.CONFIGURATION, ENABLE_API),
    "BILLING_DISABLED": Rule(Fault.CONFIGURATION, "enable billing on the service account's Cloud project"),
    "CONSUMER_SUSPENDED": Rule(Fault.CONFIGURATION, PROJECT_STATE),
    "CONSUMER_INVALID": Rule(Fault.CONFIGURATION, PROJECT_STATE),
    "SECURITY_POLICY_VIOLATED": Rule(
        Fault.CONFIGURATION, "a VPC Service Controls perimeter refuses the call: let Vigil reach the API"
    ),
    "ACCESS_TOKEN_SCOPE_INSUFFICIENT": Rule(Fault.CONFIGURATION, SCOPES),
    "ACCOUNT_STATE_INVALID": Rule(Fault.CONFIGURATION, "the service account is disabled or deleted"),
    "ACCESS_TOKEN_EXPIRED": Rule(Fault.GOOGLE, "the cached access token expired early; a new one is exchanged"),
    "RATE_LIMIT_EXCEEDED": Rule(Fault.GOOGLE, QUOTA),
    "RESOURCE_QUOTA_EXCEEDED": Rule(Fault.GOOGLE, QUOTA),
}
ANY_INFRASTRUCTURE_REASON = Rule(Fault.CONFIGURATION, "Google's API infrastructure refused the project or credentials")
#: IAM's reason, reported in the calling service's domain.
IAM_PERMISSION_DENIED = Rule(Fault.CONFIGURATION, "grant the service account the permission Google names")

#: ``errors[].reason`` of the v1 error format.
LEGACY_REASONS: dict[str, Rule] = {
    "accessNotConfigured": Rule(Fault.CONFIGURATION, ENABLE_API),
    "insufficientPermissions": Rule(Fault.CONFIGURATION, SCOPES),
    "rateLimitExceeded": Rule(Fault.GOOGLE, QUOTA),
    "userRateLimitExceeded": Rule(Fault.GOOGLE, QUOTA),
    "dailyLimitExceeded": Rule(Fault.GOOGLE, QUOTA),
    "quotaExceeded": Rule(Fault.GOOGLE, QUOTA),
    "backendError": Rule(Fault.GOOGLE),
    "forbidden": Rule(Fault.TOKEN_OR_CONFIGURATION, WRONG_PROJECT),
}

UNAUTHENTICATED = Rule(
    Fault.CONFIGURATION, "Google refused the access token; if this repeats, the service-account key was disabled"
)
NOT_FOUND = Rule(
    Fault.CONFIGURATION, "check ATTESTATION_PLAY_INTEGRITY_API_BASE_URL and the registered Android package name"
)
#: ``error.status``: the ``google.rpc.Code`` name. Anything else is Google's (an outage that passes).
STATUSES: dict[str, Rule] = {
    "INVALID_ARGUMENT": Rule(Fault.TOKEN),
    "OUT_OF_RANGE": Rule(Fault.TOKEN),
    "PERMISSION_DENIED": Rule(Fault.TOKEN_OR_CONFIGURATION, WRONG_PROJECT),
    "FAILED_PRECONDITION": Rule(Fault.TOKEN_OR_CONFIGURATION, WRONG_PROJECT),
    "UNAUTHENTICATED": UNAUTHENTICATED,
    "NOT_FOUND": NOT_FOUND,
    "RESOURCE_EXHAUSTED": Rule(Fault.GOOGLE, QUOTA),
}
#: A body that is no ``google.rpc.Status`` (a proxy's page, a front end's HTML 404): the HTTP status.
#: An unreadable 403 is undecided like Google's: an egress proxy may refuse what the token carries.
HTTP_STATUSES: dict[int, Rule] = {
    400: Rule(Fault.TOKEN),
    401: UNAUTHENTICATED,
    403: Rule(Fault.TOKEN_OR_CONFIGURATION, "no Google error body: check the egress proxy or firewall between "
              "Vigil and playintegrity.googleapis.com, then the service account's Cloud project"),
    404: NOT_FOUND,
    429: Rule(Fault.GOOGLE, QUOTA),
}
SERVER = Rule(Fault.GOOGLE)


def classify(http_status: int, body: Any) -> GoogleError:
    """Whose failure Google's non-200 answer is, from its structured fields (module docstring)."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    cause, rule = (
        _from_error_info(error) or _from_legacy(error) or _from_status(error)
        or ("", HTTP_STATUSES.get(http_status, SERVER))
    )
    message = str(error.get("message") or "")[:300]
    return GoogleError(rule.fault, f"HTTP {http_status}{cause}", rule.fix, message)


def _list(error: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = error.get(key)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _from_error_info(error: dict[str, Any]) -> tuple[str, Rule] | None:
    for info in _list(error, "details"):
        if info.get("@type") != ERROR_INFO_TYPE:
            continue
        reason = str(info.get("reason"))
        if info.get("domain") == SERVICE_INFRASTRUCTURE:
            return f" ErrorInfo {reason}", INFRASTRUCTURE_REASONS.get(reason, ANY_INFRASTRUCTURE_REASON)
        if reason == "IAM_PERMISSION_DENIED":
            return f" ErrorInfo {reason}", IAM_PERMISSION_DENIED
    return None


def _from_legacy(error: dict[str, Any]) -> tuple[str, Rule] | None:
    for item in _list(error, "errors"):
        reason = str(item.get("reason"))
        if reason in LEGACY_REASONS:
            return "".join(f" {part}" for part in (error.get("status"), reason) if part), LEGACY_REASONS[reason]
    return None


def _from_status(error: dict[str, Any]) -> tuple[str, Rule] | None:
    status = error.get("status")
    if not isinstance(status, str) or not status:
        return None
    return f" {status}", STATUSES.get(status, SERVER)
