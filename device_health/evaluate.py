"""Evaluate a device's health and store the snapshot; every change of outcome is a
security event (``device.compliance_changed``) with the facts that caused it, and a
device-compliance-change shared signal when a transmitter is available (``shared_signals``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.db import transaction

from core.events import EventType, Outcome, record

from .facts import HealthFacts, collect, display_os_version, verified_signals
from .models import DeviceHealth, HealthFinding, HealthOutcome
from .rules import Decision, RuleSpec, decide, rules_for_client
from .settings import health_settings
from .signals import compliance_changed

if TYPE_CHECKING:
    from attestation.models import Device

COMPLIANCE_EVENT = EventType.DEVICE_COMPLIANCE_CHANGED
# Facts that only date a check (a fresh Play Integrity verdict at each refresh): no rule reads
# them, so alone they do not make a snapshot change; they are stored with ``evaluated_at``.
DATED_FACTS = frozenset({"integrity_checked_at"})


@dataclass
class Evaluation:
    device: Device
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
        return self.stored is None or self.previous_os_version != os_version or (
            self.previous_findings != self.snapshot["findings"]
        )

    @cached_property
    def snapshot(self) -> dict[str, Any]:
        """The stored fields this evaluation decides (all but its timestamps)."""
        decision, platform = self.decision, self.device.platform
        reduce = decision.outcome == HealthOutcome.REDUCE
        return {
            "platform": platform,
            "os_version": display_os_version(platform, self.facts),
            "outcome": decision.outcome,
            "deciding_rule": decision.deciding.rule.name if decision.deciding else "",
            "deciding_condition": decision.deciding.rule.condition if decision.deciding else "",
            "allowed_scopes": decision.scopes if reduce else None,
            "access_token_lifetime": decision.lifetime if reduce else None,
            "findings": [f.as_json() for f in decision.findings],
            "facts": self.facts.as_json(),
            "signals": self.signals,
        }

    @cached_property
    def differs(self) -> bool:
        """Whether the stored snapshot says anything else (or there is none yet), the dates of
        facts aside (written with ``evaluated_at``: see ``persist``). Asked before any write."""
        stored = self.stored
        if stored is None:
            return True
        for name, value in self.snapshot.items():
            if name == "facts":
                if not _same_facts(stored.facts, value):
                    return True
            elif getattr(stored, name) != value:
                return True
        return False


def _same_facts(stored: dict[str, Any], new: dict[str, Any]) -> bool:
    if stored == new:
        return True
    if stored.keys() != new.keys() or not DATED_FACTS & new.keys():
        return False
    return all(stored[name] == fact for name, fact in new.items() if name not in DATED_FACTS)


_UNSET: Any = object()
_HEALTH = DeviceHealth.device.field.remote_field  # Device -> DeviceHealth (reverse one-to-one)


def preloaded_health(device: Device) -> Any:
    """``device.health`` when it came with the device (``select_related("health")``, or already
    read in this request): the row, or None when the device has none; ``_UNSET`` otherwise."""
    return _HEALTH.get_cached_value(device) if _HEALTH.is_cached(device) else _UNSET


def evaluate(
    device: Device, signals: dict[str, Any] | None, now: datetime, *, stored: Any = _UNSET,
    rules: Sequence[RuleSpec] | None = None, client: Any = None, lock: bool = False,
) -> Evaluation:
    """Judge ``device`` with these verified ``signals`` (None: keep the last stored ones).
    ``stored`` (its ``DeviceHealth`` or None), ``rules`` or the device's ``client`` may be
    passed by callers that already hold them; the snapshot loaded with the device is used
    as is. ``lock`` (inside a transaction) serialises two token requests of one device, so a
    change of outcome is announced once: a decision that would change a snapshot read
    without the lock is taken again on the locked row."""
    if rules is None:
        rules = rules_for_client(client if client is not None else device.app.client)
    unlocked = False
    if stored is _UNSET:
        stored = preloaded_health(device)
        unlocked = stored is not _UNSET
        if not unlocked:
            stored = _read(device, lock)
    evaluation = _judge(device, signals, now, stored, rules)
    if lock and unlocked and evaluation.differs:
        evaluation = _judge(device, signals, now, _read(device, lock), rules)
    return evaluation


def _read(device: Device, lock: bool) -> DeviceHealth | None:
    rows = DeviceHealth.objects.select_for_update() if lock else DeviceHealth.objects
    stored = rows.filter(device=device).first()
    _HEALTH.set_cached_value(device, stored)
    return stored


def _judge(device: Device, signals: dict[str, Any] | None, now: datetime, stored: DeviceHealth | None,
           rules: Sequence[RuleSpec]) -> Evaluation:
    if signals is None:
        kept = stored.signals if stored is not None else {}
    else:
        kept = verified_signals(signals)
    metric = stored.receipt_risk_metric if stored is not None else None
    facts = collect(device, kept, receipt_risk_metric=metric)
    decision = decide(rules, facts, device.platform, now)
    if stored is None:
        return Evaluation(device, facts, kept, decision, None)
    return Evaluation(device, facts, kept, decision, stored, stored.outcome, stored.findings, stored.os_version)


def persist(
    evaluation: Evaluation, now: datetime, *, trigger: str, request: Any = None, user: Any = None
) -> DeviceHealth:
    """Store the snapshot and its findings when they changed; record the change of outcome,
    if any. A snapshot that stays the same is not written (only ``evaluated_at`` and the dates
    of facts, once ``EVALUATED_AT_INTERVAL`` old): an unchanged refresh costs no statement here."""
    stored, device = evaluation.stored, evaluation.device
    if stored is not None and not evaluation.differs:
        if now - stored.evaluated_at >= timedelta(seconds=health_settings.EVALUATED_AT_INTERVAL):
            dated: dict[str, Any] = {"evaluated_at": now}
            if stored.facts != evaluation.snapshot["facts"]:
                dated["facts"] = evaluation.snapshot["facts"]
            _update(stored, dated)
        return stored
    fields = {**evaluation.snapshot, "evaluated_at": now}
    if evaluation.changed:
        fields["outcome_changed_at"] = now
    os_version = fields["os_version"]
    if evaluation.findings_changed(os_version):
        with transaction.atomic():
            health = _save(stored, device, fields)
            _replace_findings(health, evaluation, os_version)
    else:
        health = _save(stored, device, fields)
    if evaluation.changed:
        _announce(evaluation, trigger, request, user)
    return health


def _save(stored: DeviceHealth | None, device: Device, fields: dict[str, Any]) -> DeviceHealth:
    """One UPDATE of the known snapshot; an upsert for a device seen for the first time."""
    if stored is None:
        health = DeviceHealth.objects.update_or_create(device=device, defaults=fields)[0]
        _HEALTH.set_cached_value(device, health)
        return health
    _update(stored, fields)
    return stored


def _update(stored: DeviceHealth, fields: dict[str, Any]) -> None:
    """Save ``fields`` on the snapshot. Inside the refresh's one statement the save is refused
    (``core.sql.no_writes``), which reads the fields back, so the transactional second attempt
    still sees what the database holds and writes it."""
    for name, value in fields.items():
        setattr(stored, name, value)
    stored.save(update_fields=list(fields))


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
    outcome = Outcome.SUCCESS if decision.outcome == HealthOutcome.ALLOW else Outcome.DENIED
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
        "unattested": ("attested", "unattested_reason"),
        "software_key": ("key_security_level",),
        "app_unlicensed": ("app_licensed",),
        "devicecheck_flagged": ("devicecheck_bit0", "devicecheck_bit1", "devicecheck_last_update"),
    }.get(condition, ())


def compliance_status(outcome: str) -> str:
    """CAEP 1.0 §3.5.1 status: only a device that passes every rule is ``compliant``."""
    return "compliant" if outcome == HealthOutcome.ALLOW else "not-compliant"


def _shared_signal(device: Device, details: dict[str, Any]) -> None:
    """CAEP device-compliance-change to the registered receivers (``shared_signals``); the transmitter
    stores one delivery per receiver in this transaction and pushes after it commits."""
    previous, current = compliance_status(details["previous_outcome"]), compliance_status(details["new_outcome"])
    if previous != current:
        compliance_changed.send(sender=type(device), device=device, previous_status=previous, current_status=current,
                                reason_admin=f"device health: {details['deciding_rule'] or 'all rules pass'}")
