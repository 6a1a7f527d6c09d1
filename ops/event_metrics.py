"""Security decisions as counters: one handler per event type, called with every final
security event (``core.events.subscribe``).

Every refusal and decision of the token endpoint, the attestation verifiers, DPoP, risk,
device health, sign-in and SSF delivery is already one ``SecurityEvent`` with an
``EventType`` (docs/security-events.md), recorded where it is decided. Counting them here,
once they are final (committed, so a rolled-back step is never counted), keeps the flows
free of metrics code and the counts equal to the audit log's. Labels: enum values and
registered clients only (``core.metrics.bounded``, ``ops.labels``).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter

from accounts.pending import Ended
from core import metrics
from core.events import EventType, Outcome
from core.metrics import NONE, OTHER, bounded
from core.models import SecurityEvent
from idp.flows.resource import Refusal as ResourceRefusal
from sessions.flows.refresh import Refusal

from . import labels

Handler = Callable[[SecurityEvent], None]
REFRESH_GRANT = "refresh_token"
LOGIN_FACTORS: dict[str, str] = {EventType.LOGIN_PASSWORD: "password", EventType.LOGIN_PASSKEY: "passkey"}
THROTTLED = "throttled"
ENDED = frozenset(Ended)
#: The label values of refusals at our resource endpoints: why (``idp.flows.resource.Refusal``).
RESOURCE_REFUSALS = frozenset(ResourceRefusal)


def _detail(event: SecurityEvent, name: str) -> object:
    details = event.details
    return details.get(name) if isinstance(details, dict) else None


def _issued(event: SecurityEvent) -> None:
    grant = bounded("issued.grant", _detail(event, "grant_type"))
    metrics.TOKENS_ISSUED.labels(grant, labels.client(event.client_id)).inc()


def _code_retried(event: SecurityEvent) -> None:
    """A lost exchange's answer given again issues an access token; a refused retry none."""
    if event.outcome == Outcome.SUCCESS:
        _issued(event)


def _refreshed(outcome: str) -> Handler:
    def count(event: SecurityEvent) -> None:
        client = labels.client(event.client_id)
        metrics.REFRESH.labels(outcome, NONE, client).inc()
        metrics.TOKENS_ISSUED.labels(REFRESH_GRANT, client).inc()

    return count


def _refresh_refused(event: SecurityEvent) -> None:
    outcome = "reuse" if event.reason == Refusal.REUSE else "refused"
    metrics.REFRESH.labels(outcome, bounded("refresh.reason", event.reason), labels.client(event.client_id)).inc()


def _attestation_token_refused(event: SecurityEvent) -> None:
    """Enrollment (code grant) or a refresh's fresh evidence refused; a refresh's refusal is
    also a refused refresh (reason ``attestation``)."""
    grant = _detail(event, "grant_type") or (REFRESH_GRANT if event.session_id else "")
    reason = bounded("attestation_token.reason", event.reason)
    metrics.ATTESTATION_TOKEN_REFUSALS.labels(reason, bounded("attestation_token.grant", grant)).inc()
    if grant == REFRESH_GRANT:
        metrics.REFRESH.labels("refused", "attestation", labels.client(event.client_id)).inc()


def _attestation_verdict(kind: str) -> Handler:
    def count(event: SecurityEvent) -> None:
        failed = bool(event.reason) or event.outcome in {Outcome.FAILURE, Outcome.DENIED}
        metrics.ATTESTATION.labels(
            bounded("attestation.platform", _detail(event, "platform") or "any"),
            kind,
            "failed" if failed else "ok",
            bounded("attestation.reason", event.reason),
        ).inc()

    return count


def _devicecheck(event: SecurityEvent) -> None:
    metrics.DEVICECHECK.labels(
        bounded("devicecheck.operation", _detail(event, "operation")),
        bounded("devicecheck.result", event.reason or "ok"),
        bounded("devicecheck.degraded", _detail(event, "degraded")),
    ).inc()


def _by_reason(counter: Counter, key: str) -> Handler:
    def count(event: SecurityEvent) -> None:
        counter.labels(bounded(key, event.reason)).inc()

    return count


def _resource_refused(event: SecurityEvent) -> None:
    """By why (the event's ``detail``, a ``Refusal``: ``expired``, ``wrong_audience``,
    ``dpop_nonce_required``...), not by the error answered, which is ``invalid_token`` for most
    of them; a value that is no ``Refusal`` (an event of an older release) is ``other``."""
    why = _detail(event, "detail")
    metrics.RESOURCE_REFUSALS.labels(why if isinstance(why, str) and why in RESOURCE_REFUSALS else OTHER).inc()


def _risk_action(event: SecurityEvent) -> None:
    metrics.RISK_ACTIONS.labels(bounded("risk.action", event.reason), bounded("risk.outcome", event.outcome)).inc()


def _device_health(event: SecurityEvent) -> None:
    outcome = bounded("health.outcome", _detail(event, "new_outcome"))
    metrics.DEVICE_HEALTH.labels(outcome, bounded("health.platform", _detail(event, "platform"))).inc()


def _login(event: SecurityEvent) -> None:
    """A sign-in step: a factor tried, and its result. A half-done sign-in ended before its
    second step (``accounts.pending.Ended``: its password changed meanwhile) tried no factor and
    gave nobody a session: it stays on record as a ``login.second_factor`` event, uncounted."""
    if event.reason in ENDED:
        return
    factor = LOGIN_FACTORS.get(event.event_type) or bounded("login.factor", _detail(event, "method"))
    if event.outcome == Outcome.SUCCESS:
        result = "success"
    elif event.reason == THROTTLED:
        result = THROTTLED
    else:
        result = "failure"
    metrics.LOGINS.labels(factor, result).inc()


def _ssf(result: str) -> Handler:
    def count(event: SecurityEvent) -> None:
        metrics.SSF_DELIVERIES.labels(result).inc()

    return count


HANDLERS: dict[str, Handler] = {
    EventType.OAUTH_TOKEN_ISSUED: _issued,
    EventType.OAUTH_CODE_RETRIED: _code_retried,
    EventType.OAUTH_TOKEN_REFRESHED: _refreshed("rotated"),
    EventType.OAUTH_REFRESH_RETRIED: _refreshed("grace_retry"),
    EventType.OAUTH_REFRESH_REFUSED: _refresh_refused,
    EventType.ATTESTATION_TOKEN_REFUSED: _attestation_token_refused,
    EventType.ATTESTATION_ENROLL: _attestation_verdict("enroll"),
    EventType.ATTESTATION_ASSERT: _attestation_verdict("assert"),
    EventType.ATTESTATION_CHALLENGE: _attestation_verdict("challenge"),
    EventType.ATTESTATION_DEVICECHECK: _devicecheck,
    EventType.DPOP_REFUSED: _by_reason(metrics.DPOP_REFUSALS, "dpop.reason"),
    EventType.OAUTH_ERROR: _by_reason(metrics.OAUTH_ERRORS, "oauth.error"),
    EventType.RESOURCE_TOKEN_REFUSED: _resource_refused,
    EventType.RISK_SIGNAL: _by_reason(metrics.RISK_SIGNALS, "risk.signal"),
    EventType.RISK_ACTION: _risk_action,
    EventType.DEVICE_COMPLIANCE_CHANGED: _device_health,
    EventType.SESSION_REVOKED: _by_reason(metrics.SESSIONS_REVOKED, "session.reason"),
    EventType.LOGIN_PASSWORD: _login,
    EventType.LOGIN_PASSKEY: _login,
    EventType.LOGIN_SECOND_FACTOR: _login,
    EventType.SSF_SET_DELIVERED: _ssf("sent"),
    EventType.SSF_SET_REJECTED: _ssf("rejected"),
    EventType.SSF_SET_FAILED: _ssf("failed"),
}


def count(event: SecurityEvent) -> None:
    """``core.events`` listener: count ``event`` if it is a decision we count."""
    handler = HANDLERS.get(event.event_type)
    if handler is not None:
        handler(event)
