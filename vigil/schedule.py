"""Every periodic task, in one list: the Celery beat schedule.

Beat entries are installed into django-celery-beat (``vigil.celery_beat``) the first time
beat starts; after that an admin may change an interval in the admin. A period of ``0`` in
the app's setting leaves the entry out. See docs/operations.md ("Periodic jobs").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from attestation.app_settings import app_settings as attestation_settings
from device_health.settings import health_settings
from risk.settings import risk_settings
from shared_signals.app_settings import app_settings as ssf_settings

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True)
class Periodic:
    name: str  # the beat entry (a django-celery-beat row)
    task: str  # the Celery task name
    seconds: Callable[[], float]  # its period, read from settings when the schedule is built; 0 disables


PERIODIC: list[Periodic] = [
    Periodic("rotate-signing-keys", "idp.rotate_keys_if_due", lambda: HOUR),
    Periodic("purge-expired-protocol-state", "idp.purge_expired_codes_and_tokens", lambda: HOUR),
    Periodic("resend-pending-logouts", "idp.resend_pending_logouts", lambda: 300.0),
    # sessions/revalidation.py: stale attestation; revoked Android certificates (also chained
    # after every revocation-list refresh: this entry is the safety net).
    Periodic("revalidate-device-attestations", "sessions.revalidate_device_attestations", lambda: 900.0),
    Periodic("suspend-revoked-android-devices", "sessions.suspend_revoked_android_devices", lambda: DAY),
    Periodic(
        "refresh-android-revocation-list",
        "attestation.refresh_android_revocation_list",
        lambda: attestation_settings.ANDROID_REVOCATION_REFRESH_SECONDS,
    ),
    Periodic(
        "flag-pending-devicecheck",
        "attestation.devicecheck_flag_pending",
        lambda: attestation_settings.DEVICECHECK_FLAG_SWEEP_SECONDS,
    ),
    Periodic(
        "revalidate-device-health", "device_health.reevaluate_devices", lambda: health_settings.REVALIDATE_SECONDS
    ),
    Periodic(
        "refresh-apple-receipts",
        "device_health.refresh_apple_receipts",
        lambda: health_settings.RECEIPT_REFRESH_SECONDS,
    ),
    Periodic(
        "recompute-usage-baselines", "risk.recompute_usage_baselines", lambda: risk_settings.BASELINE_REFRESH_SECONDS
    ),
    Periodic("ssf-retry-undelivered", "shared_signals.deliver_pending_sets", lambda: ssf_settings.RETRY_SWEEP_SECONDS),
    Periodic("ssf-purge", "shared_signals.purge_old_sets_and_deliveries", lambda: DAY),
]

# Names the tasks had before they said what they do (issue 14). Messages already queued, and
# django-celery-beat rows, may still carry them: each stays registered as an alias for one
# release (docs/operations.md).
OLD_TASK_NAMES: dict[str, str] = {  # rewrite-imports: off
    "sessions.revalidate_devices": "sessions.revalidate_device_attestations",
    "attestation.health.revalidate_devices": "device_health.reevaluate_devices",
    "attestation.health.refresh_apple_receipt": "device_health.refresh_apple_receipt",
    "attestation.health.refresh_apple_receipts": "device_health.refresh_apple_receipts",
    "sessions.recompute_usage_baselines": "risk.recompute_usage_baselines",
    "idp.ssf.deliver_security_event": "shared_signals.deliver_security_event",
    "idp.ssf.retry_undelivered": "shared_signals.deliver_pending_sets",
    "idp.ssf.purge": "shared_signals.purge_old_sets_and_deliveries",
    "idp.purge_expired": "idp.purge_expired_codes_and_tokens",
}  # rewrite-imports: on


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule``: every entry of ``PERIODIC`` whose period is not 0."""
    periods = {p.name: float(p.seconds()) for p in PERIODIC}
    return {p.name: {"task": p.task, "schedule": periods[p.name]} for p in PERIODIC if periods[p.name] > 0}
