"""The fleet view's numbers: how many devices fail which rule, by platform and OS version,
how many devices are in each outcome, and how far each device is trusted (attested,
reduced, unattested, flagged). One aggregate query each."""

from __future__ import annotations

from typing import TypedDict

from django.db import models
from django.db.models import Case, Count, Exists, OuterRef, Q, QuerySet, Value, When

from attestation.models import Device

from .models import DeviceHealth, HealthCondition, HealthFinding, HealthOutcome


class Trust(models.TextChoices):
    """How far a device is trusted, the first that holds (issue 17: "which devices are
    attested, reduced, unattested or flagged")."""

    FLAGGED = "flagged", "Flagged (DeviceCheck abuse bit, set or read)"
    UNATTESTED = "unattested", "Unattested (the fallback: DPoP key only)"
    REDUCED = "reduced", "Attested, restricted by device health (reduce, step-up or deny)"
    ATTESTED = "attested", "Attested, full access"


TRUST = "trust"  # the annotation ``with_trust`` adds (django-stubs cannot follow it)
RESTRICTED = (HealthOutcome.REDUCE, HealthOutcome.STEP_UP, HealthOutcome.DENY)


def _flagged() -> Q:
    """Flagged at Apple by an operator (asked or confirmed), or enrolled with the abuse bit set."""
    read_flagged = Exists(HealthFinding.objects.filter(
        health__device=OuterRef("pk"), condition=HealthCondition.DEVICECHECK_FLAGGED))
    return Q(devicecheck_flag_requested_at__isnull=False) | Q(devicecheck_flagged_at__isnull=False) | Q(read_flagged)


def with_trust(devices: QuerySet[Device]) -> QuerySet[Device]:
    """``devices`` annotated with ``trust`` (a ``Trust`` value), in the same query."""
    return devices.annotate(**{TRUST: Case(
        When(_flagged(), then=Value(Trust.FLAGGED.value)),
        When(attested=False, then=Value(Trust.UNATTESTED.value)),
        When(health__outcome__in=RESTRICTED, then=Value(Trust.REDUCED.value)),
        default=Value(Trust.ATTESTED.value),
        output_field=models.CharField(),
    )})


class TrustCount(TypedDict):
    platform: str
    trust: str
    devices: int


def of_trust(devices: QuerySet[Device], trust: Trust) -> QuerySet[Device]:
    """The devices of ``with_trust(...)`` that are trusted as ``trust``."""
    return devices.filter(Q(**{TRUST: trust.value}))


def trust_counts(client_id: int | None = None) -> list[TrustCount]:
    """Rows ``{platform, trust, devices}`` over every device (active or not)."""
    devices = Device.objects.all()
    if client_id is not None:
        devices = devices.filter(app__client_id=client_id)
    return list(with_trust(devices).values("platform", TRUST).annotate(devices=Count("pk"))
                .order_by("platform", TRUST))


class FailingRule(TypedDict):
    rule: str
    condition: str
    outcome: str
    platform: str
    os_version: str
    devices: int


class OutcomeCount(TypedDict):
    platform: str
    outcome: str
    devices: int


def failing_rules(client_id: int | None = None) -> list[FailingRule]:
    """Rows ``{rule, condition, outcome, platform, os_version, devices}``, most devices first."""
    rows = HealthFinding.objects.all()
    if client_id is not None:
        rows = rows.filter(health__device__app__client_id=client_id)
    return list(
        rows.values("rule", "condition", "outcome", "platform", "os_version")
        .annotate(devices=Count("health", distinct=True))
        .order_by("-devices", "rule", "platform", "os_version")
    )


def outcomes(client_id: int | None = None) -> list[OutcomeCount]:
    """Rows ``{platform, outcome, devices}``."""
    rows = DeviceHealth.objects.all()
    if client_id is not None:
        rows = rows.filter(device__app__client_id=client_id)
    return list(rows.values("platform", "outcome").annotate(devices=Count("pk")).order_by("platform", "outcome"))
