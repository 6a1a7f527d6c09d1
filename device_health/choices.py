"""Choosing, per graded fact, what it earns on one client (``create_client --on-...``; the
admin edits the same rows in the health policy's rules inline).

Each choice is one rule of the client's ``HealthPolicy`` on the fact's condition, named like
the default it replaces (``software-key``, ``rooted-boot``, ``unlocked-bootloader``,
``app-not-genuine``, ``app-unlicensed``; ``integrity-below-<level>`` for device recognition,
one per level). An own rule on a graded fact replaces that fact's defaults
(``device_health/rules.py``), and a ``deny`` among them makes the verifier refuse the fact
(``device_health/grading.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from attestation.grading import GradedFact
from attestation.models import Platform
from core.events import EventType, record

from .models import HealthOutcome, HealthPolicy, HealthRule
from .rules import UNATTESTED_RULE, default_rules, graded_defaults

RULE_NAMES = {
    GradedFact.SOFTWARE_KEY: "software-key",
    GradedFact.BOOT_NOT_VERIFIED: "rooted-boot",
    GradedFact.BOOTLOADER_UNLOCKED: "unlocked-bootloader",
    GradedFact.APP_NOT_RECOGNIZED: "app-not-genuine",
    GradedFact.APP_UNLICENSED: "app-unlicensed",
}
LEVELS = ("strong", "device", "basic")


class ChoiceError(ValueError):
    """A choice that cannot be stored (unknown outcome or level)."""


@dataclass(frozen=True)
class FactChoice:
    fact: GradedFact
    outcome: HealthOutcome
    level: str = ""  # integrity_below only

    @property
    def rule_name(self) -> str:
        return f"integrity-below-{self.level}" if self.fact == GradedFact.INTEGRITY_BELOW else RULE_NAMES[self.fact]


def outcome_of(value: str) -> HealthOutcome:
    try:
        return HealthOutcome(value.strip().lower().replace("-", "_"))
    except ValueError as exc:
        raise ChoiceError(f"{value!r} is not an outcome: allow, reduce, step_up or deny") from exc


def integrity_choice(value: str) -> FactChoice:
    """``LEVEL=OUTCOME``, e.g. ``device=reduce``: recognition below LEVEL earns OUTCOME."""
    level, sep, outcome = value.partition("=")
    if not sep or level.strip() not in LEVELS:
        raise ChoiceError(f"{value!r}: write LEVEL=OUTCOME with LEVEL one of strong, device, basic")
    return FactChoice(GradedFact.INTEGRITY_BELOW, outcome_of(outcome), level.strip())


def _message(fact: GradedFact) -> str:
    return next((r.message for r in graded_defaults() if r.condition == fact), "")


@transaction.atomic
def choose(
    client: Any, choices: Sequence[FactChoice], *, reduced_scopes: str = "", reduced_lifetime: int | None = None,
    actor: str = "",
) -> HealthPolicy:
    """Store the choices as the client's rules (created or updated by name), and the policy's
    reduced scopes / lifetime; one ``device_health.policy_changed`` event."""
    policy, _ = HealthPolicy.objects.get_or_create(client=client)
    if reduced_scopes or reduced_lifetime:
        policy.reduced_scopes = reduced_scopes or policy.reduced_scopes
        policy.reduced_lifetime = reduced_lifetime or policy.reduced_lifetime
        policy.save(update_fields=["reduced_scopes", "reduced_lifetime", "updated_at"])
    for order, choice in enumerate(choices):
        HealthRule.objects.update_or_create(
            policy=policy, name=choice.rule_name,
            defaults={"order": order, "enabled": True, "platform": Platform.ANDROID, "condition": choice.fact,
                      "parameter": choice.level, "outcome": choice.outcome, "user_message": _message(choice.fact)},
        )
    record(EventType.DEVICE_HEALTH_POLICY_CHANGED, client_id=client.client_id, admin=actor,
           choices={c.rule_name: c.outcome.value for c in choices}, reduced_scopes=policy.reduced_scopes,
           reduced_lifetime=policy.reduced_lifetime)
    return policy


@transaction.atomic
def choose_unattested(client: Any, outcome: HealthOutcome, *, actor: str = "") -> HealthPolicy:
    """What a device that did not attest earns on ``client`` (the fallback,
    docs/unattested-devices.md): its rule ``unattested-device`` on any platform, replacing
    the default (reduce); one ``device_health.policy_changed`` event."""
    policy, _ = HealthPolicy.objects.get_or_create(client=client)
    default = next(r for r in default_rules() if r.name == UNATTESTED_RULE)
    HealthRule.objects.update_or_create(
        policy=policy, name=UNATTESTED_RULE,
        defaults={"enabled": True, "platform": "", "condition": default.condition, "parameter": "",
                  "outcome": outcome, "user_message": default.message},
    )
    record(EventType.DEVICE_HEALTH_POLICY_CHANGED, client_id=client.client_id, admin=actor,
           choices={UNATTESTED_RULE: outcome.value})
    return policy
