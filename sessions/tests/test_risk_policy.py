"""Per-client risk policies: every signal mapped to every action, the refusal each action
makes at the token endpoint and at userinfo, and policy edits in the admin (docs/risk.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse

from core.models import SecurityEvent
from risk import actions
from risk import testing as net
from risk.actions import policy_for
from risk.errors import REVOKED_DESCRIPTION, STEP_UP_DESCRIPTION
from risk.models import DEFAULT_ACTIONS, RiskAction, RiskPolicy, RiskSignal, StepUpDemand
from risk.signals import Signal
from risk.stepup import acr_demanded_for
from sessions.models import DeviceSession, SessionStatus

from .test_risk_travel import T0, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(time_machine: Any) -> Any:
    time_machine.move_to(T0, tick=False)
    return time_machine


def make_session(user: Any, client: Any, sid: str = "sid-1") -> DeviceSession:
    return DeviceSession.objects.create(sid=sid, user=user, client=client, auth_time=T0, acr="urn:vigil:acr:password")


def test_secure_defaults_without_a_policy_row(mobile_client):
    policy = policy_for(mobile_client.client)
    assert policy.pk is None
    assert {s: policy.action_for(s) for s in RiskSignal.values} == {
        "impossible_travel": "step_up", "volume_anomaly": "step_up", "new_device": "record",
        "new_country": "record", "attestation_failures": "revoke", "integrity_downgrade": "step_up",
    }
    assert policy.accepts_usage_reports is False
    saved = RiskPolicy.objects.create(client=mobile_client.client)
    assert {s: saved.action_for(s) for s in RiskSignal.values} == DEFAULT_ACTIONS


@pytest.mark.parametrize("signal", RiskSignal.values)
@pytest.mark.parametrize("action,status", [
    (RiskAction.RECORD, SessionStatus.ACTIVE),
    (RiskAction.STEP_UP, SessionStatus.STEP_UP_REQUIRED),
    (RiskAction.REVOKE, SessionStatus.REVOKED),
])
def test_each_signal_maps_to_each_action(user, mobile_client, signal, action, status):
    RiskPolicy.objects.create(client=mobile_client.client, **{signal: action})
    session = make_session(user, mobile_client.client)
    plan = actions.plan([Signal(signal, {"fact": 1})], mobile_client.client)
    assert plan.action == action and plan.refuses == (action != RiskAction.RECORD)

    actions.execute(plan, user=user, client=mobile_client.client, session=session, request=None, now=T0, source="test")

    session.refresh_from_db()
    assert session.status == status
    event = SecurityEvent.objects.get(event_type="risk.signal")
    assert event.reason == signal and event.details["fact"] == 1 and event.details["action"] == action
    taken = SecurityEvent.objects.get(event_type="risk.action")
    assert taken.reason == action and taken.details["cause"] == f"risk:{signal}"
    demanded = acr_demanded_for(user, mobile_client.client)
    assert demanded == ("urn:vigil:acr:mfa" if action == RiskAction.STEP_UP else None)
    if action == RiskAction.REVOKE:
        assert session.status_reason == f"risk:{signal}" and session.revoked_at == T0
        assert SecurityEvent.objects.filter(event_type="session.revoked", reason=f"risk:{signal}").exists()


def test_the_strongest_action_wins_and_every_signal_is_recorded(user, mobile_client):
    RiskPolicy.objects.create(client=mobile_client.client, new_country=RiskAction.REVOKE)
    session = make_session(user, mobile_client.client)
    signals = [Signal(RiskSignal.IMPOSSIBLE_TRAVEL), Signal(RiskSignal.NEW_COUNTRY), Signal(RiskSignal.NEW_DEVICE)]
    plan = actions.plan(signals, mobile_client.client)
    assert plan.action == RiskAction.REVOKE
    actions.execute(plan, user=user, client=mobile_client.client, session=session, request=None, now=T0, source="test")
    assert SecurityEvent.objects.filter(event_type="risk.signal").count() == 3
    assert SecurityEvent.objects.get(event_type="risk.action").details["cause"] == "risk:new_country"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_a_fresh_mfa_authentication_meets_a_step_up(user, mobile_client):
    plan = actions.plan([Signal(RiskSignal.IMPOSSIBLE_TRAVEL)], mobile_client.client, mfa_satisfied=True)
    assert plan.action == RiskAction.RECORD and plan.satisfied == ["impossible_travel"]
    RiskPolicy.objects.create(client=mobile_client.client, impossible_travel=RiskAction.REVOKE)
    strict = actions.plan([Signal(RiskSignal.IMPOSSIBLE_TRAVEL)], mobile_client.client, mfa_satisfied=True)
    assert strict.action == RiskAction.REVOKE  # MFA does not undo a revocation


# --- at the token endpoint and userinfo ----------------------------------------------------------


def test_revoke_at_refresh_revokes_the_family(clock, browser, mobile_client, pkce):
    RiskPolicy.objects.create(client=mobile_client.client, impossible_travel=RiskAction.REVOKE)
    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    clock.shift(timedelta(hours=1))
    refused = net.refresh(tokens["refresh_token"], client_id, net.SYDNEY)
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_grant", "error_description": REVOKED_DESCRIPTION}
    session = DeviceSession.objects.get()
    assert session.status == SessionStatus.REVOKED and session.status_reason == "risk:impossible_travel"
    assert not StepUpDemand.objects.exists()
    assert net.refresh(tokens["refresh_token"], client_id, net.SYDNEY).json()["error"] == "invalid_grant"
    gone = net.userinfo(tokens["access_token"], net.SYDNEY)
    assert gone.status_code == 401 and gone.json()["error"] == "invalid_token"


def test_record_only_lets_the_request_through(clock, browser, mobile_client, pkce):
    RiskPolicy.objects.create(client=mobile_client.client, impossible_travel=RiskAction.RECORD)
    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    clock.shift(timedelta(hours=1))
    assert net.refresh(tokens["refresh_token"], client_id, net.SYDNEY).status_code == 200
    assert SecurityEvent.objects.get(event_type="risk.signal", reason="impossible_travel").details["action"] == "record"
    assert SecurityEvent.objects.get(event_type="risk.action").outcome == "recorded"


def test_step_up_at_code_exchange_demands_mfa_without_a_session(clock, browser, mobile_client, pkce, user):
    from idp.tests.conftest import get_code, make_pkce

    client_id = mobile_client.client.client_id
    sign_in(browser, client_id, pkce, net.PARIS)
    clock.shift(timedelta(hours=1))
    second = make_pkce()
    code, _ = get_code(browser, client_id, second)
    refused = net.exchange(code, second.verifier, client_id, "com.example.app:/oauth2redirect", net.SYDNEY)
    assert refused.json() == {"error": "invalid_grant", "error_description": STEP_UP_DESCRIPTION}
    assert DeviceSession.objects.count() == 1  # the refused exchange started no family
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE  # the Paris one is another family
    assert acr_demanded_for(user, mobile_client.client) == "urn:vigil:acr:mfa"
    action = SecurityEvent.objects.get(event_type="risk.action")
    assert action.session_id == "" and action.details["source"] == "token:authorization_code"
    # The refused code was not consumed, but retrying it cannot bypass the open demand.
    retry = net.exchange(code, second.verifier, client_id, "com.example.app:/oauth2redirect", net.SYDNEY)
    assert retry.json() == {"error": "invalid_grant", "error_description": STEP_UP_DESCRIPTION}
    assert DeviceSession.objects.count() == 1
    pending = SecurityEvent.objects.get(event_type="risk.step_up_pending")
    assert pending.details["demanded_acr"] == "urn:vigil:acr:mfa" and pending.details["acr"] == "urn:vigil:acr:password"


def test_revoke_at_userinfo_is_invalid_token(clock, browser, mobile_client, pkce):
    RiskPolicy.objects.create(client=mobile_client.client, impossible_travel=RiskAction.REVOKE)
    tokens = sign_in(browser, mobile_client.client.client_id, pkce, net.PARIS)
    clock.shift(timedelta(minutes=3))
    response = net.userinfo(tokens["access_token"], net.SYDNEY)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "error_description": REVOKED_DESCRIPTION}
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_disabled_risk_evaluation_fires_nothing(clock, browser, mobile_client, pkce, settings):
    settings.SESSIONS_RISK_ENABLED = False
    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    clock.shift(timedelta(hours=1))
    assert net.refresh(tokens["refresh_token"], client_id, net.SYDNEY).status_code == 200
    assert not SecurityEvent.objects.filter(event_type__startswith="risk.").exists()


# --- the admin ------------------------------------------------------------------------------------


def _form(policy_client: Any, **changes: str) -> dict[str, str]:
    data = {"client": str(policy_client.pk), **{s: DEFAULT_ACTIONS[s] for s in RiskSignal.values}}
    data.update(changes)
    return data


def test_admin_edits_a_policy_and_the_next_request_follows_it(clock, admin_client, browser, mobile_client, pkce):
    response = admin_client.post(reverse("admin:risk_riskpolicy_add"),
                                 _form(mobile_client.client, impossible_travel="revoke"))
    assert response.status_code == 302, response.content
    policy = RiskPolicy.objects.get(client=mobile_client.client)
    assert policy.impossible_travel == "revoke"
    edit = SecurityEvent.objects.get(event_type="risk.policy_changed")
    assert edit.details["changes"]["impossible_travel"] == "revoke" and edit.details["admin"] == "admin"

    client_id = mobile_client.client.client_id
    tokens = sign_in(browser, client_id, pkce, net.PARIS)
    clock.shift(timedelta(hours=1))
    assert net.refresh(tokens["refresh_token"], client_id, net.SYDNEY).json()["error_description"] == REVOKED_DESCRIPTION

    changed = admin_client.post(reverse("admin:risk_riskpolicy_change", args=[policy.pk]),
                                _form(mobile_client.client, impossible_travel="record", accepts_usage_reports="on"))
    assert changed.status_code == 302
    policy.refresh_from_db()
    assert policy.impossible_travel == "record" and policy.accepts_usage_reports is True


@pytest.mark.parametrize("name", ["riskpolicy", "stepupdemand", "userriskprofile", "usagereport", "dailyusage",
                                  "usagebaseline", "deviceriskstate"])
def test_risk_changelists_render(admin_client, name):
    assert admin_client.get(reverse(f"admin:risk_{name}_changelist")).status_code == 200


def test_admin_clears_a_step_up_demand(admin_client, user, mobile_client):
    demand = StepUpDemand.objects.create(user=user, client=mobile_client.client, acr="urn:vigil:acr:mfa", reason="x")
    response = admin_client.post(reverse("admin:risk_stepupdemand_changelist"),
                                 {"action": "clear", "_selected_action": [demand.pk]})
    assert response.status_code == 302
    assert acr_demanded_for(user, mobile_client.client) is None



def test_signals_and_actions_are_json_log_lines(user, mobile_client, django_capture_on_commit_callbacks):
    """One JSON line each, written when the events commit (``core.events``)."""
    import json
    import logging

    from core.logging import JsonLineFormatter

    class Capture(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.setFormatter(JsonLineFormatter())
            self.lines: list[dict[str, Any]] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(json.loads(self.format(record)))

    session = make_session(user, mobile_client.client)
    plan = actions.plan([Signal(RiskSignal.NEW_COUNTRY, {"country": "AU"})], mobile_client.client)
    capture, logger = Capture(), logging.getLogger("vigil.security")
    logger.addHandler(capture)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            actions.execute(plan, user=user, client=mobile_client.client, session=session, request=None, now=T0,
                            source="test")
    finally:
        logger.removeHandler(capture)
    lines = capture.lines
    assert [(line["event"], line["reason"]) for line in lines] == [("risk.signal", "new_country"),
                                                                  ("risk.action", "record")]
    assert lines[0]["details"]["country"] == "AU" and lines[0]["session_id"] == session.sid


def test_a_demand_is_met_by_the_sign_in_that_answered_it_whatever_the_clocks_say(user, mobile_client):
    """A code from an MFA sign-in made before the risk arose cannot be exchanged past the demand,
    even when its auth_time (another server's clock) is after the demand's; a sign-in that
    answered the demand meets it even when its auth_time is before (docs/risk.md)."""
    from risk.policy import unmet_demand
    from risk.stepup import ACR_MFA, answer_open_demands, demand

    assert answer_open_demands(user, "signed-in-before", now=T0) == 0  # nothing open: answers nothing
    demand(user, mobile_client.client, "impossible_travel", now=T0)
    assert answer_open_demands(user, "signed-in-after", now=T0) == 1
    assert answer_open_demands(user, "signed-in-after", now=T0) == 0  # once
    before = DeviceSession(user=user, client=mobile_client.client, acr=ACR_MFA, login_id="signed-in-before",
                           auth_time=T0 + timedelta(minutes=1))
    after = DeviceSession(user=user, client=mobile_client.client, acr=ACR_MFA, login_id="signed-in-after",
                          auth_time=T0 - timedelta(minutes=1))
    same_second = DeviceSession(user=user, client=mobile_client.client, acr=ACR_MFA, login_id="signed-in-after",
                                auth_time=T0)
    weak = DeviceSession(user=user, client=mobile_client.client, acr="urn:vigil:acr:password",
                         login_id="signed-in-after", auth_time=T0 + timedelta(minutes=1))
    unknown = DeviceSession(user=user, client=mobile_client.client, acr=ACR_MFA, auth_time=T0 + timedelta(minutes=1))
    assert unmet_demand(user, mobile_client.client, before) == ACR_MFA
    assert unmet_demand(user, mobile_client.client, weak) == ACR_MFA
    assert unmet_demand(user, mobile_client.client, unknown) == ACR_MFA  # no login id: meets nothing
    assert unmet_demand(user, mobile_client.client, None) == ACR_MFA
    assert unmet_demand(user, mobile_client.client, after) == ""
    assert unmet_demand(user, mobile_client.client, same_second) == ""


def test_open_demands_are_newest_first_per_client_and_an_empty_login_id_answers_none(
    user, mobile_client, service_client
):
    """The one statement behind ``unmet_demand``: only this client's open demands, newest
    first, ``answered`` only for the sign-in named; a stray answer row with an empty login id
    answers nothing, and a cleared demand is not open."""
    from risk.models import StepUpAnswer, StepUpDemand
    from risk.stepup import ACR_MFA, open_demands

    old = StepUpDemand.objects.create(user=user, client=mobile_client.client, acr="urn:example:old",
                                      reason="a", created_at=T0)
    new = StepUpDemand.objects.create(user=user, client=mobile_client.client, acr=ACR_MFA, reason="b",
                                      created_at=T0 + timedelta(minutes=1))
    StepUpDemand.objects.create(user=user, client=service_client.client, acr=ACR_MFA, reason="c", created_at=T0)
    StepUpDemand.objects.create(user=user, client=mobile_client.client, acr="urn:example:cleared", reason="d",
                                created_at=T0 + timedelta(minutes=2), cleared_at=T0 + timedelta(minutes=3))
    StepUpAnswer.objects.create(demand=old, login_id="signed-in", created_at=T0)
    StepUpAnswer.objects.create(demand=new, login_id="", created_at=T0)

    assert open_demands(user, mobile_client.client, "signed-in") == [(ACR_MFA, False), ("urn:example:old", True)]
    assert open_demands(user, mobile_client.client, "") == [(ACR_MFA, False), ("urn:example:old", False)]
    assert open_demands(user, mobile_client.client, "someone-else") == [(ACR_MFA, False), ("urn:example:old", False)]


def test_a_sign_in_answers_only_the_demands_open_when_it_completed(user, mobile_client, service_client):
    """Every open demand of the user (at any client) and none opened after it."""
    from risk.policy import unmet_demand
    from risk.stepup import ACR_MFA, answer_open_demands, demand

    demand(user, mobile_client.client, "impossible_travel", now=T0)
    demand(user, service_client.client, "impossible_travel", now=T0)
    assert answer_open_demands(user, "login-1", now=T0) == 2
    first = DeviceSession(user=user, client=mobile_client.client, acr=ACR_MFA, login_id="login-1", auth_time=T0)
    assert unmet_demand(user, mobile_client.client, first) == ""
    StepUpDemand.objects.create(user=user, client=mobile_client.client, acr=ACR_MFA, reason="later",
                                created_at=T0 - timedelta(hours=1))  # opened after the sign-in, clock behind
    assert unmet_demand(user, mobile_client.client, first) == ACR_MFA
