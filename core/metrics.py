"""Vigil's Prometheus metrics: every metric, its labels and how their values stay bounded
(docs/operations.md "Metrics").

Definitions only, with ``prometheus_client``: the request middleware, the security-event
subscriber, the Celery signal receivers and the ``/metrics`` view live in ``ops``. In
gunicorn's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before the process starts)
each process writes its samples to files in that directory and ``/metrics`` adds them up;
without it the values live in this process (``manage.py runserver``, tests).

Cardinality is bounded by construction: no label ever holds a user id, a token id or a
session id; a client label holds a registered client id or ``other`` (``ops.labels``);
every other label holds an enum value, a URL name, a status code or a task name, and passes
through ``bounded`` so that even an unexpected value cannot grow a metric past
``MAX_VALUES_PER_LABEL`` series per label in one process.
"""

from __future__ import annotations

import re
import threading

from prometheus_client import Counter, Histogram

OTHER = "other"
NONE = "none"
MAX_VALUES_PER_LABEL = 64
_LABEL_VALUE = re.compile(r"[A-Za-z0-9_.:/-]{1,80}")
_seen: dict[str, set[str]] = {}
_seen_lock = threading.Lock()


def bounded(label: str, value: object) -> str:
    """``value`` as a label value of ``label``: ``none`` when empty, ``other`` when it is not a
    plain word or when ``label`` has already taken ``MAX_VALUES_PER_LABEL`` values here."""
    text = str(value) if value is not None else ""
    if not text:
        return NONE
    seen = _seen.get(label)
    if seen is not None and text in seen:
        return text
    if not _LABEL_VALUE.fullmatch(text):
        return OTHER
    with _seen_lock:
        seen = _seen.setdefault(label, set())
        if text not in seen and len(seen) >= MAX_VALUES_PER_LABEL:
            return OTHER
        seen.add(text)
    return text


# --- HTTP (ops.middleware) ------------------------------------------------------------------
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_REQUESTS = Counter(
    "vigil_http_requests", "HTTP requests answered, by endpoint (the URL name), method and status code.",
    ["endpoint", "method", "status"],
)
HTTP_DURATION = Histogram(
    "vigil_http_request_duration_seconds", "Time to answer, by endpoint (the URL name) and status class (2xx...).",
    ["endpoint", "status_class"], buckets=LATENCY_BUCKETS,
)

# --- security decisions (ops.event_metrics, from the security events) -------------------------
TOKENS_ISSUED = Counter("vigil_tokens_issued", "Token responses issued, by grant type and client.", ["grant", "client"])
REFRESH = Counter(
    "vigil_refresh",
    "Refresh-token requests by outcome (rotated, grace_retry, reuse, refused) and refusal reason, per client.",
    ["outcome", "reason", "client"],
)
ATTESTATION = Counter(
    "vigil_attestation_verdicts",
    "Device attestation verdicts by platform, kind (enroll, assert, challenge), verdict (ok, failed) and reason.",
    ["platform", "kind", "verdict", "reason"],
)
ATTESTATION_TOKEN_REFUSALS = Counter(
    "vigil_attestation_token_refusals", "Token requests refused for their device attestation, by reason and grant.",
    ["reason", "grant"],
)
DEVICECHECK = Counter(
    "vigil_devicecheck_calls",
    "Calls to Apple's DeviceCheck API by operation (query, update), result (ok or the failure reason) and how a "
    "failure degraded (fail_open, fail_closed, none).",
    ["operation", "result", "degraded"],
)
DPOP_REFUSALS = Counter("vigil_dpop_refusals", "DPoP proofs refused at the token endpoint, by reason.", ["reason"])
OAUTH_ERRORS = Counter("vigil_oauth_errors", "OAuth error responses (RFC 6749 §5.2 codes).", ["error"])
RESOURCE_REFUSALS = Counter("vigil_resource_token_refusals", "Access tokens refused at resource endpoints.", ["reason"])
RISK_SIGNALS = Counter("vigil_risk_signals", "Risk signals detected, by signal.", ["signal"])
RISK_ACTIONS = Counter(
    "vigil_risk_actions", "Risk actions, by action and outcome (taken, recorded).", ["action", "outcome"]
)
DEVICE_HEALTH = Counter(
    "vigil_device_health_changes", "Device compliance changes, by the new outcome and platform.",
    ["outcome", "platform"],
)
SESSIONS_REVOKED = Counter("vigil_sessions_revoked", "Device sessions revoked, by reason.", ["reason"])
LOGINS = Counter(
    "vigil_logins",
    "Sign-in steps by factor (password, passkey, totp, recovery) and result (success, failure, throttled).",
    ["factor", "result"],
)
SSF_DELIVERIES = Counter(
    "vigil_ssf_deliveries", "Security Event Token pushes by result (sent, retried, rejected, failed).", ["result"]
)

# --- Celery (ops.celery_metrics) --------------------------------------------------------------
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0)
CELERY_TASKS = Counter(
    "vigil_celery_tasks", "Celery task runs by task and state (succeeded, failed, retried).", ["task", "state"]
)
CELERY_DURATION = Histogram(
    "vigil_celery_task_duration_seconds", "Celery task run time, by task.", ["task"], buckets=TASK_BUCKETS
)

# --- backing stores (core.outage, ops.health, ops.celery_metrics) -----------------------------
DEPENDENCY_ERRORS = Counter(
    "vigil_dependency_errors",
    "PostgreSQL (database) or Redis (cache) found unreachable, by where it was noticed (request, readyz, task).",
    ["dependency", "where"],
)


def dependency_error(dependency: str, where: str) -> None:
    DEPENDENCY_ERRORS.labels(bounded("dependency", dependency), where).inc()
