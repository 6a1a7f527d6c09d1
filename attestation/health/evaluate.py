"""Evaluate a device's health and store the snapshot; every change of outcome is a
security event (``device.compliance_changed``) with the facts that caused it, and a
device-compliance-change shared signal when a transmitter is available (``idp.ssf``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from idp.events import record

from ..health_models import DeviceHealth, HealthFinding, HealthOutcome
from .facts import HealthFacts, collect, display_os_version, verified_signals
from .rules import Decision, RuleSpec, decide, rules_for_client

COMPLIANCE_EVENT = "device.compliance_changed"


@dataclass
class Evaluation:
    device: Any
    facts: HealthFacts
    signals: dict[str, Any]
    decision: Decision
    stored: DeviceHealth | None  # the snapshot this evaluation updates (None: first evaluation)
    previous: str | None = None  # its outcome before this evaluation
    previous_findings: list[dict[str, Any]] | None = None
    previous_os_version: str | None = None

    @property
    def changed(self) -> bool:
        """A new outcome (a first evaluation that allows is not a change)."""
        return self.previous != self.decision.outcome and not (
            self.previous is None and self.decision.outcome == HealthOutcome.ALLOW
        )

    def findings_changed(self, os_version: str) -> bool:
        return self.stored is None or self.previous_os_version != os_version or self.previous_findings != [
            f.as_json() for f in self.decision.findings
        ]


_UNSET: Any = object()


def evaluate(
    device: Any, signals: dict[str, Any] | None, now: datetime, *, stored: Any = _UNSET,
    rules: list[RuleSpec] | None = None, client: Any = None, lock: bool = False,
) -> Evaluation:
    """Judge ``device`` with these verified ``signals`` (None: keep the last stored ones).
    ``stored`` (its ``DeviceHealth`` or None), ``rules`` or the device's ``client`` may be
    passed by callers that already hold them. ``lock`` (inside a transaction) serialises two
    token requests of one device, so a change of outcome is announced once."""
    if stored is _UNSET:
        rows = DeviceHealth.objects.select_for_update() if lock else DeviceHealth.objects
        stored = rows.filter(device=device).first()
    if signals is None:
        kept = stored.signals if stored is not None else {}
    else:
        kept = verified_signals(signals)
    metric = stored.receipt_risk_metric if stored is not None else None
    facts = collect(device, kept, receipt_risk_metric=metric)
    if rules is None:
        rules = rules_for_client(client if client is not None else device.app.client)
    decision = decide(rules, facts, device.platform, now)
    if stored is None:
        return Evaluation(device, facts, kept, decision, None)
    return Evaluation(device, facts, kept, decision, stored, stored.outcome, stored.findings, stored.os_version)


def persist(evaluation: Evaluation, now: datetime, *, trigger: str, request: Any = None, user: Any = None) -> DeviceHealth:
    """Store the snapshot and its findings; record the change of outcome, if any."""
    decision, device = evaluation.decision, evaluation.device
    os_version = display_os_version(device.platform, evaluation.facts)
    fields = {
        "platform": device.platform,
        "os_version": os_version,
        "outcome": decision.outcome,
        "deciding_rule": decision.deciding.rule.name if decision.deciding else "",
        "deciding_condition": decision.deciding.rule.condition if decision.deciding else "",
        "allowed_scopes": decision.scopes if decision.outcome == HealthOutcome.REDUCE else None,
        "access_token_lifetime": decision.lifetime if decision.outcome == HealthOutcome.REDUCE else None,
        "findings": [f.as_json() for f in decision.findings],
        "facts": evaluation.facts.as_json(),
        "signals": evaluation.signals,
        "evaluated_at": now,
    }
    if evaluation.changed:
        fields["outcome_changed_at"] = now
    if evaluation.findings_changed(os_version):
        with transaction.atomic():
            health = _save(evaluation.stored, device, fields)
            _replace_findings(health, evaluation, os_version)
    else:
        health = _save(evaluation.stored, device, fields)
    if evaluation.changed:
        _announce(evaluation, trigger, request, user)
    return health


def _save(stored: DeviceHealth | None, device: Any, fields: dict[str, Any]) -> DeviceHealth:
    """One UPDATE of the known snapshot; an upsert for a device seen for the first time."""
    if stored is None:
        return DeviceHealth.objects.update_or_create(device=device, defaults=fields)[0]
    for name, value in fields.items():
        setattr(stored, name, value)
    stored.save(update_fields=list(fields))
    return stored


def _replace_findings(health: DeviceHealth, evaluation: Evaluation, os_version: str) -> None:
    """The fleet view's rows for this device: one per rule that fired."""
    HealthFinding.objects.filter(health=health).delete()
    HealthFinding.objects.bulk_create([
        HealthFinding(health=health, rule=f.rule.name, condition=f.rule.condition, outcome=f.rule.outcome,
                      platform=health.platform, os_version=os_version, detail=f.detail[:200])
        for f in evaluation.decision.findings
    ])


def _announce(evaluation: Evaluation, trigger: str, request: Any, user: Any) -> None:
    decision, device = evaluation.decision, evaluation.device
    # the facts behind the rules that fire now, and behind those that fired before (a recovery)
    conditions = [f.rule.condition for f in decision.findings]
    conditions += [str(f.get("condition", "")) for f in evaluation.previous_findings or []]
    causes = {name for condition in conditions for name in _fact_names(condition)}
    details = {
        "device": device.pk,
        "key_id": device.key_id,
        "platform": device.platform,
        "previous_outcome": evaluation.previous or HealthOutcome.ALLOW,
        "new_outcome": decision.outcome,
        "deciding_rule": decision.deciding.rule.name if decision.deciding else "",
        "findings": [f.as_json() for f in decision.findings],
        "facts": {k: v for k, v in evaluation.facts.as_json().items() if k in causes},
        "trigger": trigger,
    }
    outcome = "success" if decision.outcome == HealthOutcome.ALLOW else "denied"
    record(COMPLIANCE_EVENT, outcome=outcome, reason=decision.deciding.rule.name if decision.deciding else "compliant",
           user=user, client_id=device.app.client.client_id, request=request, **details)
    _shared_signal(device, details)


def _fact_names(condition: str) -> tuple[str, ...]:
    return {
        "boot_not_verified": ("verified_boot_state",),
        "bootloader_unlocked": ("bootloader_locked",),
        "integrity_below": ("device_recognition",),
        "app_not_recognized": ("genuine_app",),
        "patch_older_than": ("os_patch_level",),
        "os_version_below": ("os_version", "reported_os_version"),
        "screen_captured": ("screen_captured", "screen_mirrored"),
        "debugger_attached": ("debugger_attached",),
        "app_access_risk": ("apps_detected",),
        "play_protect_risk": ("play_protect_verdict",),
        "device_activity_above": ("recent_device_activity",),
        "receipt_risk_above": ("receipt_risk_metric",),
    }.get(condition, ())


def compliance_status(outcome: str) -> str:
    """CAEP 1.0 §3.5.1 status: only a device that passes every rule is ``compliant``."""
    return "compliant" if outcome == HealthOutcome.ALLOW else "not-compliant"


def _shared_signal(device: Any, details: dict[str, Any]) -> None:
    """CAEP device-compliance-change to the registered receivers (``idp.ssf``); the transmitter
    stores one delivery per receiver in this transaction and pushes after it commits."""
    from idp.ssf.transmitter import emit_device_compliance_change

    previous, current = compliance_status(details["previous_outcome"]), compliance_status(details["new_outcome"])
    if previous != current:
        emit_device_compliance_change(device, previous_status=previous, current_status=current,
                                      reason_admin=f"device health: {details['deciding_rule'] or 'all rules pass'}")
