"""Turning signals into actions by the client's policy, and taking them (docs/risk.md).

Every signal is a ``risk.signal`` security event (reason = the signal, details = its facts
and the action the policy maps it to); the action taken is one ``risk.action`` event.
Several signals at once take the strongest action (record < step_up < revoke).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.http import HttpRequest

from core.events import EventType, Outcome, record
from sessions.flows.tokens import revoke_session
from sessions.models import DeviceSession

from . import stepup
from .models import ACTION_ORDER, DEFAULT_ACTIONS, RiskAction, RiskPolicy, RiskSignal
from .settings import risk_settings
from .signals import Signal


def policy_for(client: Any) -> RiskPolicy:
    """The client's policy, or the secure defaults when it has none (not saved)."""
    policy = RiskPolicy.objects.filter(client=client).first() if getattr(client, "pk", None) else None
    return policy or RiskPolicy(client=client, **DEFAULT_ACTIONS)


@dataclass
class Plan:
    """What the signals of one evaluation lead to for one session (or one user at one client)."""

    signals: list[Signal]
    actions: dict[str, str]
    action: str = RiskAction.RECORD
    satisfied: list[str] = field(default_factory=list)

    @property
    def refuses(self) -> bool:
        return self.action != RiskAction.RECORD


#: Signals judged more strictly on a session of an unattested device (docs/unattested-devices.md).
LOCATION_SIGNALS = frozenset({RiskSignal.IMPOSSIBLE_TRAVEL, RiskSignal.NEW_COUNTRY})


def plan(signals: list[Signal], client: Any, *, mfa_satisfied: bool = False, unattested: bool = False) -> Plan:
    """Map each signal to its action; a step-up already met by a fresh MFA authentication
    (``mfa_satisfied``) is only recorded. On a session of an ``unattested`` device a location
    signal takes at least ``SESSIONS_RISK_UNATTESTED_MIN_ACTION``."""
    policy = policy_for(client)
    actions = {s.kind: policy.action_for(s.kind) for s in signals}
    if unattested:
        floor = risk_settings.UNATTESTED_MIN_ACTION
        for kind in LOCATION_SIGNALS & actions.keys():
            actions[kind] = max(actions[kind], floor, key=ACTION_ORDER.index)
    satisfied = []
    if mfa_satisfied:
        satisfied = [kind for kind, action in actions.items() if action == RiskAction.STEP_UP]
    effective = [RiskAction.RECORD if kind in satisfied else action for kind, action in actions.items()]
    strongest = max(effective, key=ACTION_ORDER.index, default=RiskAction.RECORD)
    return Plan(signals=signals, actions=actions, action=strongest, satisfied=satisfied)


def _reason(plan_: Plan) -> str:
    kinds = sorted(k for k, a in plan_.actions.items() if a == plan_.action and k not in plan_.satisfied)
    return f"risk:{'+'.join(kinds)}"[:80]


def execute(
    plan_: Plan,
    *,
    user: Any,
    client: Any,
    session: DeviceSession | None,
    request: HttpRequest | None,
    now: datetime,
    source: str,
) -> None:
    """Record every signal, then take the plan's action on ``session`` (or, without one, open
    the step-up demand for ``user`` at ``client``)."""
    client_id = getattr(client, "client_id", "") or ""
    sid = session.sid if session is not None else ""
    for signal in plan_.signals:
        record(
            EventType.RISK_SIGNAL,
            outcome=Outcome.DETECTED,
            reason=signal.kind,
            user=user,
            client_id=client_id,
            session_id=sid,
            request=request,
            source=source,
            action=plan_.actions[signal.kind],
            satisfied_by_mfa=signal.kind in plan_.satisfied,
            **signal.details,
        )
    if not plan_.signals:
        return
    reason = _reason(plan_)
    changed = False
    if plan_.action == RiskAction.REVOKE and session is not None:
        changed = revoke_session(session, reason, now=now, source=source)
    elif plan_.action == RiskAction.STEP_UP and session is not None:
        changed = stepup.require_step_up(session, reason, now=now, source=source)
    elif plan_.action == RiskAction.STEP_UP and user is not None and client is not None:
        changed = stepup.demand(user, client, reason, now=now) is not None
    record(
        EventType.RISK_ACTION,
        outcome=Outcome.TAKEN if plan_.refuses else Outcome.RECORDED,
        reason=plan_.action,
        user=user,
        client_id=client_id,
        session_id=sid,
        request=request,
        source=source,
        cause=reason,
        signals=[s.kind for s in plan_.signals],
        changed=changed,
        satisfied_by_mfa=plan_.satisfied,
    )
