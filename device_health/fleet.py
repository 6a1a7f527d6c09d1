"""The fleet view's numbers: how many devices fail which rule, by platform and OS version,
and how many devices are in each outcome. One aggregate query each."""

from __future__ import annotations

from typing import TypedDict

from django.db.models import Count

from .models import DeviceHealth, HealthFinding


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
