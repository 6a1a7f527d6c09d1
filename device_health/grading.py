"""The client's device-health policy tells the Android verifiers which facts to refuse
(``attestation/grading.py``): a graded fact is refused by the verifier exactly when one of
the client's rules on it (its own, or the default that keeps today's refusal) denies it.

Everything else the rules say about those facts (allow, reduce, step-up) is applied by the
token policy (``device_health/policy.py``) once the device is stored: so a denied fact gets
the wire error it always had (``invalid_client_attestation`` with the verifier's reason) and
leaves nothing behind, and any other outcome is graded with the device's other facts.
"""

from __future__ import annotations

from collections.abc import Sequence

from attestation.grading import GradedFact, Refusals, strict_refusals
from attestation.models import Platform, RegisteredApp

from .models import HealthOutcome
from .rules import RuleSpec, integrity_rank, rules_for_client

VERIFIER_LEVELS = ("basic", "device", "strong")


def _denied(rules: Sequence[RuleSpec], fact: GradedFact) -> bool:
    return any(r.condition == fact and r.outcome == HealthOutcome.DENY for r in rules)


def _refused_level(rules: Sequence[RuleSpec]) -> str | None:
    """The strictest level a deny rule asks for, read as the rule itself reads it
    (``integrity_rank``: an unknown parameter is ``basic``, ``none`` asks for nothing); None
    when no rule denies a recognition level."""
    ranks = [
        integrity_rank(r.parameter)
        for r in rules if r.condition == GradedFact.INTEGRITY_BELOW and r.outcome == HealthOutcome.DENY
    ]
    strictest = max(ranks, default=0)
    return VERIFIER_LEVELS[strictest - 1] if strictest else None


def refusals(app: RegisteredApp) -> Refusals:
    """What the verifiers refuse for ``app`` under its client's rules (from the config cache:
    no query on the hot path)."""
    if app.platform != Platform.ANDROID:
        return strict_refusals(app)
    rules = [r for r in rules_for_client(app.client) if r.platform in ("", Platform.ANDROID)]
    return Refusals(
        software_key=_denied(rules, GradedFact.SOFTWARE_KEY),
        unverified_boot=_denied(rules, GradedFact.BOOT_NOT_VERIFIED),
        unlocked_bootloader=_denied(rules, GradedFact.BOOTLOADER_UNLOCKED),
        min_integrity=_refused_level(rules),
        unrecognized_app=_denied(rules, GradedFact.APP_NOT_RECOGNIZED),
        unlicensed=_denied(rules, GradedFact.APP_UNLICENSED),
    )
