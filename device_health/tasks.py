"""Celery tasks of device health: the periodic revalidation of every active device, and the
App Attest receipt refresh that feeds the fraud risk metric.

Both take primary keys or nothing, re-fetch, are idempotent, and let errors raise so
Celery retries (network errors of the receipt service are retried with backoff).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import requests
from celery import shared_task
from django.utils import timezone

from attestation.models import Device, DeviceStatus, Platform
from sessions.flows.revocation import Reason
from sessions.flows.tokens import revoke_session
from sessions.models import DeviceSession, SessionStatus

from .evaluate import Evaluation, evaluate, persist
from .models import DeviceHealth, HealthOutcome
from .receipts import ReceiptClient, client_for
from .rules import RuleSpec, rules_for_client
from .settings import health_settings

RECEIPT_MIN_AGE = dt.timedelta(hours=24)  # Apple refreshes a receipt at most about once a day


def apply_outcome(evaluation: Evaluation, now: dt.datetime) -> int:
    """Enforce a decision taken outside a token request on the device's live sessions:
    deny revokes them (and so their access tokens); a new step-up marks them so the next
    refresh sends the user back to authorization. Returns the sessions touched."""
    device, outcome = evaluation.device, evaluation.decision.outcome
    live = DeviceSession.objects.filter(device=device).exclude(status=SessionStatus.REVOKED)
    if outcome == HealthOutcome.DENY:
        return sum(revoke_session(s, Reason.DEVICE_HEALTH_DENIED, now=now) for s in live)
    if outcome == HealthOutcome.STEP_UP and evaluation.changed:
        return live.filter(status=SessionStatus.ACTIVE).update(
            status=SessionStatus.STEP_UP_REQUIRED, status_reason="device_health_step_up")
    return 0


def revalidate_device(device: Device, now: dt.datetime, *, stored: Any, rules: Sequence[RuleSpec]) -> Evaluation:
    """Decide again on the stored facts and last signals (patch levels age, policies change)."""
    evaluation = evaluate(device, None, now, stored=stored, rules=rules)
    persist(evaluation, now, trigger="revalidation")
    apply_outcome(evaluation, now)  # idempotent: a crash between the two is repaired by the next run
    return evaluation


@shared_task(name="device_health.reevaluate_devices")
def revalidate_devices(after_pk: int = 0) -> dict[str, int]:
    """Revalidate every active device, in batches by primary key. Returns counts by outcome."""
    now = timezone.now()
    counts: dict[str, int] = {}
    rules_by_client: dict[int, Sequence[RuleSpec]] = {}
    batch = health_settings.REVALIDATE_BATCH
    while True:
        devices = list(Device.objects.active().filter(pk__gt=after_pk).select_related("app__client")
                       .order_by("pk")[:batch])
        if not devices:
            return counts
        stored = {h.device_id: h for h in DeviceHealth.objects.filter(device__in=devices)}
        for device in devices:
            client = device.app.client
            if client.pk not in rules_by_client:
                rules_by_client[client.pk] = rules_for_client(client)
            rules = rules_by_client[client.pk]
            outcome = revalidate_device(device, now, stored=stored.get(device.pk), rules=rules).decision.outcome
            counts[outcome] = counts.get(outcome, 0) + 1
        after_pk = devices[-1].pk


@shared_task(
    name="device_health.refresh_apple_receipt",
    autoretry_for=(requests.ConnectionError, requests.Timeout),
    retry_backoff=True,
    max_retries=5,
)
def refresh_apple_receipt(device_pk: int, base_url: str | None = None) -> int | None:
    """Exchange the device's receipt for a fresh one at Apple's service; store it and its
    risk metric, then revalidate. Returns the risk metric (None if Apple kept the receipt)."""
    device = Device.objects.select_related("app__client").get(pk=device_pk)
    if device.platform != Platform.IOS or device.status != DeviceStatus.ACTIVE or not bytes(device.receipt):
        return None
    client: ReceiptClient = client_for(device, base_url=base_url)
    if not client.configured:
        return None
    now = timezone.now()
    fresh = client.refresh(bytes(device.receipt), now=now)
    health, _ = DeviceHealth.objects.get_or_create(device=device, defaults={"platform": device.platform})
    health.receipt_checked_at = now
    fields = ["receipt_checked_at"]
    if fresh is not None:
        Device.objects.filter(pk=device.pk).update(receipt=fresh.raw)
        health.receipt_risk_metric = fresh.risk_metric
        fields.append("receipt_risk_metric")
    health.save(update_fields=fields)
    revalidate_device(device, now, stored=health, rules=rules_for_client(device.app.client))
    return fresh.risk_metric if fresh is not None else None


@shared_task(name="device_health.refresh_apple_receipts")
def refresh_apple_receipts() -> int:
    """Queue a receipt refresh for each active attested iOS device not refreshed in the last
    day (an unattested one has no App Attest receipt)."""
    cutoff = timezone.now() - RECEIPT_MIN_AGE
    pks = list(
        Device.objects.active().filter(platform=Platform.IOS, attested=True)
        .exclude(health__receipt_checked_at__gt=cutoff).values_list("pk", flat=True)
    )
    for pk in pks:
        refresh_apple_receipt.delay(pk)
    return len(pks)
