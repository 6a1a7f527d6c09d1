"""Each counted event type and its labels (``ops/event_metrics.py``), on events as the flows
build them; the flows themselves are exercised in test_flow_metrics and
test_attested_flow_metrics."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from celery import signals

from core.events import EventType, Outcome, build, record
from core.metrics import NONE, OTHER, bounded
from core.models import SecurityEvent
from idp.flows.resource import Refusal as ResourceRefusal
from ops import celery_metrics, event_metrics
from shared_signals.tasks import deliver_security_event

from .conftest import Deltas

pytestmark = pytest.mark.django_db


def count(event_type: EventType, **fields: Any) -> None:
    event_metrics.count(build(event_type, **fields))


def test_logins_by_factor_and_result() -> None:
    seen = Deltas(*[("vigil_logins_total", {"factor": f, "result": r})
                    for f, r in [("password", "throttled"), ("totp", "failure"), ("recovery", "success"),
                                 ("passkey", "failure")]])
    count(EventType.LOGIN_PASSWORD, outcome=Outcome.DENIED, reason="throttled")
    count(EventType.LOGIN_SECOND_FACTOR, outcome=Outcome.FAILURE, reason="bad_code", method="totp")
    count(EventType.LOGIN_SECOND_FACTOR, method="recovery")
    count(EventType.LOGIN_PASSKEY, outcome=Outcome.FAILURE, reason="unknown_credential", method="passkey")
    assert seen.gained() == [1, 1, 1, 1]


def test_risk_device_health_sessions_and_ssf() -> None:
    seen = Deltas(("vigil_risk_signals_total", {"signal": "impossible_travel"}),
                  ("vigil_risk_actions_total", {"action": "revoke", "outcome": "taken"}),
                  ("vigil_device_health_changes_total", {"outcome": "deny", "platform": "android"}),
                  ("vigil_sessions_revoked_total", {"reason": "admin"}),
                  ("vigil_ssf_deliveries_total", {"result": "sent"}),
                  ("vigil_ssf_deliveries_total", {"result": "failed"}))
    count(EventType.RISK_SIGNAL, outcome=Outcome.DETECTED, reason="impossible_travel", user=None)
    count(EventType.RISK_ACTION, outcome=Outcome.TAKEN, reason="revoke")
    count(EventType.DEVICE_COMPLIANCE_CHANGED, outcome=Outcome.DENIED, reason="rooted", new_outcome="deny",
          platform="android")
    count(EventType.SESSION_REVOKED, reason="admin")
    count(EventType.SSF_SET_DELIVERED)
    count(EventType.SSF_SET_FAILED, outcome=Outcome.FAILURE)
    assert seen.gained() == [1, 1, 1, 1, 1, 1]


def test_resource_refusals_are_labelled_by_why_from_a_bounded_set() -> None:
    """Each ``Refusal`` is its own series, whatever error it answered; a ``detail`` that is no
    ``Refusal`` (missing, free text, an older release's event) is ``other``, never a new series.
    The refusals /userinfo really records are counted in test_flow_metrics."""
    refusals = [("vigil_resource_token_refusals_total", {"reason": why.value}) for why in ResourceRefusal]
    seen = Deltas(*refusals, ("vigil_resource_token_refusals_total", {"reason": OTHER}),
                  ("vigil_resource_token_refusals_total", {"reason": "invalid_token"}),
                  ("vigil_resource_token_refusals_total", {"reason": "bad signature"}))
    for why in ResourceRefusal:
        count(EventType.RESOURCE_TOKEN_REFUSED, outcome=Outcome.DENIED, reason="invalid_token", detail=why)
    details: list[dict[str, Any]] = [{}, {"detail": "bad signature"}, {"detail": "openid"}, {"detail": ["expired"]}]
    for detail in details:
        count(EventType.RESOURCE_TOKEN_REFUSED, outcome=Outcome.DENIED, reason="invalid_token", **detail)
    assert seen.gained() == [1] * len(ResourceRefusal) + [4, 0, 0]


def test_the_outcome_decides_what_is_counted() -> None:
    """A code retry counts an issued token only when answered (``success``); an attestation
    verdict whose outcome is ``failure`` or ``denied`` is failed even without a reason."""
    verdict = {"platform": "ios", "kind": "assert", "reason": NONE}
    seen = Deltas(("vigil_tokens_issued_total", {"grant": "authorization_code", "client": NONE}),
                  ("vigil_attestation_verdicts_total", {**verdict, "verdict": "failed"}),
                  ("vigil_attestation_verdicts_total", {**verdict, "verdict": "ok"}),
                  ("vigil_logins_total", {"factor": "password", "result": "success"}),
                  ("vigil_logins_total", {"factor": "password", "result": "failure"}))
    count(EventType.OAUTH_CODE_RETRIED, grant_type="authorization_code")
    count(EventType.OAUTH_CODE_RETRIED, outcome=Outcome.DENIED, reason="unanswerable", grant_type="authorization_code")
    count(EventType.ATTESTATION_ASSERT, outcome=Outcome.DENIED, platform="ios")
    count(EventType.ATTESTATION_ASSERT, outcome=Outcome.FAILURE, platform="ios")
    count(EventType.ATTESTATION_ASSERT, platform="ios")
    count(EventType.LOGIN_PASSWORD)
    count(EventType.LOGIN_PASSWORD, outcome=Outcome.FAILURE, reason="bad_password")
    assert seen.gained() == [1, 2, 1, 1, 1]


def test_an_event_read_back_is_counted_as_when_built() -> None:
    """A row's ``outcome`` is a plain string again (``introspect_jwt`` reads its event back so):
    the handlers' ``Outcome`` comparisons match it all the same."""
    seen = Deltas(("vigil_logins_total", {"factor": "password", "result": "success"}),
                  ("vigil_logins_total", {"factor": "password", "result": "throttled"}),
                  ("vigil_risk_actions_total", {"action": "step_up", "outcome": "recorded"}))
    written = [record(EventType.LOGIN_PASSWORD), record(EventType.LOGIN_PASSWORD, outcome=Outcome.DENIED,
                                                        reason="throttled"),
               record(EventType.RISK_ACTION, outcome=Outcome.RECORDED, reason="step_up")]
    stored = [SecurityEvent.objects.get(pk=event.pk) for event in written]
    assert [type(event.outcome) for event in stored] == [str, str, str]
    for event in stored:
        event_metrics.count(event)
    assert seen.gained() == [1, 1, 1]


def test_events_not_counted_change_nothing() -> None:
    seen = Deltas(("vigil_logins_total", {"factor": "password", "result": "success"}))
    count(EventType.CLIENT_REGISTERED, client_id="x")
    count(EventType.FACTOR_TOTP_ENROLLED)
    assert seen.gained() == [0]


def test_label_values_stay_bounded() -> None:
    assert bounded("test.reason", "") == "none"
    assert bounded("test.reason", "user alice@example.com") == OTHER  # not a plain word
    values = [bounded("test.many", f"reason_{i}") for i in range(100)]
    assert values[:64] == [f"reason_{i}" for i in range(64)] and set(values[64:]) == {OTHER}
    assert bounded("test.many", "reason_3") == "reason_3"  # a value already seen keeps its series


def test_a_retried_ssf_push_is_counted() -> None:
    seen = Deltas(("vigil_ssf_deliveries_total", {"result": "retried"}),
                  ("vigil_celery_tasks_total", {"task": "shared_signals.deliver_security_event", "state": "retried"}))
    signals.task_retry.send(sender=deliver_security_event, request=None, reason="503", einfo=None)
    assert seen.gained() == [1, 1]


def test_a_worker_serves_its_own_metrics(settings: Any) -> None:
    from tests.live_stack import free_port

    port = free_port()
    settings.VIGIL_CELERY_METRICS_PORT = str(port)
    server = celery_metrics._serve_worker_metrics()
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "# TYPE vigil_celery_tasks_total counter" in text
    finally:
        if server is not None:
            server.shutdown()
