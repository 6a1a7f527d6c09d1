"""Continuous revalidation of device-bound sessions (periodic jobs; issue 6, item 4).

Plain functions with ``now`` injectable; ``sessions/tasks.py`` wraps them as Celery tasks.

* ``revalidate_devices``: a device whose last good evidence — its last full attestation or
  its last assertion with the attested key, whichever is newer — is older than
  ``SESSIONS_ATTESTATION_MAX_AGE_SECONDS`` (per client: ``..._BY_CLIENT``) and that still backs
  an active session is marked ``requires_reattestation`` (one security event per device); the
  token endpoint then revokes the session at its next refresh. An active session whose device
  is still marked ``SESSIONS_REATTESTATION_GRACE_SECONDS`` later is revoked here
  (``attestation_stale``), with the session's tokens and one ``session.revoked`` event.
* ``suspend_revoked_android_devices``: an active Android device with a certificate of its
  attestation chain (``verdict["key_attestation"]["chain_serials"]``) on Google's revocation
  status list is suspended.

Size and concurrency: candidates are walked in ascending primary-key pages (keyset
pagination, ``SESSIONS_REVALIDATION_BATCH_SIZE`` rows, primary keys only), so memory does
not grow with the table. Each page is handled in one transaction that locks its rows with
``SELECT ... FOR UPDATE SKIP LOCKED`` and re-checks the conditions under the lock: two
workers never handle the same row, and a worker killed mid-page leaves the page as it was
(the transaction rolls back) for the next run. Every step is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from attestation.flows.registry import require_reattestation, suspend_device
from attestation.models import Device, Platform

from .app_settings import app_settings
from .flows.revocation import Reason
from .flows.tokens import revoke_session
from .models import DeviceSession

STALE_REASON = Reason.ATTESTATION_STALE

M = TypeVar("M", bound=models.Model)


@dataclass
class RevalidationResult:
    """What one run of ``revalidate_devices`` changed."""

    revoked_sessions: int = 0
    marked_devices: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# --------------------------------------------------------------------------- paging and locking
def pk_pages(queryset: QuerySet[M], batch_size: int) -> Iterator[list[int]]:
    """Primary keys of ``queryset`` in ascending pages of at most ``batch_size``.

    Keyset pagination (``pk > last``): each page is a fresh query, so rows that stop
    matching while we work (handled by us or by another worker) simply drop out."""
    last = 0
    while True:
        page = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not page:
            return
        yield page
        last = page[-1]


def lock_page(queryset: QuerySet[M], pks: list[int]) -> list[M]:
    """The rows of ``pks`` still matching ``queryset``, locked ``FOR UPDATE SKIP LOCKED``
    (only the rows of the queryset's own table). Call inside ``transaction.atomic()``."""
    locked = queryset.filter(pk__in=pks).select_for_update(skip_locked=True, of=("self",))
    return list(locked.order_by("pk"))


# --------------------------------------------------------------------------- staleness
def _last_good(prefix: str = "") -> Greatest:
    """The newer of the last attestation and the last assertion of a device."""
    attested = f"{prefix}last_attested_at"
    return Greatest(attested, Coalesce(f"{prefix}last_asserted_at", attested))


def stale_before(now: datetime, *, client_path: str, field: str, extra_seconds: int = 0) -> Q:
    """``field`` older than the attestation max age (+ ``extra_seconds``), honouring the
    per-client overrides; ``client_path`` is the lookup to the client's ``client_id``."""
    default = app_settings.ATTESTATION_MAX_AGE_SECONDS
    overrides = app_settings.ATTESTATION_MAX_AGE_BY_CLIENT

    def older_than(seconds: int) -> Q:
        return Q(**{f"{field}__lt": now - timedelta(seconds=seconds + extra_seconds)})

    condition = older_than(default)
    if not overrides:
        return condition
    condition &= ~Q(**{f"{client_path}__in": list(overrides)})
    for client_id, seconds in overrides.items():
        condition |= Q(**{client_path: client_id}) & older_than(seconds)
    return condition


def sessions_to_revoke(now: datetime) -> QuerySet[DeviceSession]:
    """Active sessions whose device was marked at least the grace period ago and is still stale.

    The grace runs from the mark, so a device marked by one worker is never revoked by a
    concurrent run a moment later, and a device marked late (after an outage) still gets it."""
    grace = app_settings.REATTESTATION_GRACE_SECONDS
    return (
        DeviceSession.objects.active()
        .filter(device__isnull=False, device__requires_reattestation=True)
        .filter(device__reattestation_required_at__lte=now - timedelta(seconds=grace))
        .annotate(device_last_good=_last_good("device__"))
        .filter(stale_before(now, client_path="client__client_id", field="device_last_good"))
    )


def devices_to_mark(now: datetime) -> QuerySet[Device]:
    """Active, unmarked, attested devices with an active session and stale evidence (an
    unattested device has no evidence to renew: it is offered attestation at every refresh,
    docs/unattested-devices.md)."""
    return (
        Device.objects.active()
        .filter(requires_reattestation=False, attested=True)
        .filter(Exists(DeviceSession.objects.active().filter(device=OuterRef("pk"))))
        .annotate(last_good=_last_good())
        .filter(stale_before(now, client_path="app__client__client_id", field="last_good"))
    )


# --------------------------------------------------------------------------- revalidate devices
def revoke_stale_sessions(now: datetime | None = None, batch_size: int | None = None) -> int:
    """Revoke (``attestation_stale``) sessions of marked devices past the grace period."""
    now = now or timezone.now()
    batch = batch_size or app_settings.REVALIDATION_BATCH_SIZE
    candidates = sessions_to_revoke(now)
    revoked = 0
    for page in pk_pages(candidates, batch):
        with transaction.atomic():
            for session in lock_page(candidates.select_related("client", "user"), page):
                revoked += int(revoke_session(session, STALE_REASON, now=now, device=session.device_id))
    return revoked


def mark_stale_devices(now: datetime | None = None, batch_size: int | None = None) -> int:
    """Mark devices with stale evidence ``requires_reattestation`` (a security event each)."""
    now = now or timezone.now()
    batch = batch_size or app_settings.REVALIDATION_BATCH_SIZE
    candidates = devices_to_mark(now)
    marked = 0
    for page in pk_pages(candidates, batch):
        with transaction.atomic():
            for device in lock_page(candidates.select_related("app__client"), page):
                require_reattestation(device, reason=STALE_REASON, now=now)
                marked += 1
    return marked


def revalidate_devices(now: datetime | None = None, batch_size: int | None = None) -> RevalidationResult:
    """One revalidation run: first revoke sessions of devices marked earlier and past the
    grace period, then mark newly stale devices (so a device is never marked and revoked
    in the same run)."""
    now = now or timezone.now()
    return RevalidationResult(
        revoked_sessions=revoke_stale_sessions(now, batch_size),
        marked_devices=mark_stale_devices(now, batch_size),
    )


# --------------------------------------------------------------------------- Android revocation list
def revoked_serial(serials: Any, revoked: Mapping[str, str]) -> str | None:
    """The first serial of ``serials`` (lower-case hex, as stored) on the status list."""
    if not isinstance(serials, list):
        return None
    return next((s for s in serials if isinstance(s, str) and s in revoked), None)


def _android_devices() -> QuerySet[Device]:
    return Device.objects.active().filter(platform=Platform.ANDROID)


def _listed_in_page(pks: list[int], revoked: Mapping[str, str]) -> list[int]:
    rows = _android_devices().filter(pk__in=pks).values_list("pk", "verdict__key_attestation__chain_serials")
    return [pk for pk, serials in rows if revoked_serial(serials, revoked)]


def suspend_revoked_android_devices(
    revoked: Mapping[str, str], now: datetime | None = None, batch_size: int | None = None
) -> int:
    """Suspend active Android devices whose attestation chain has a certificate on
    ``revoked`` (``{serial_hex: "REVOKED"|"SUSPENDED"}``, as ``load_status_list`` returns)."""
    if not revoked:
        return 0
    now = now or timezone.now()
    batch = batch_size or app_settings.REVALIDATION_BATCH_SIZE
    suspended = 0
    for page in pk_pages(_android_devices(), batch):
        listed = _listed_in_page(page, revoked)
        if not listed:
            continue
        with transaction.atomic():
            for device in lock_page(_android_devices().select_related("app__client"), listed):
                serial = revoked_serial((device.verdict or {}).get("key_attestation", {}).get("chain_serials"), revoked)
                if serial is None:  # re-enrolled with another chain since the page was read
                    continue
                reason = f"revocation list: certificate {serial} {revoked[serial]}"
                suspend_device(device, reason=reason, now=now)
                suspended += 1
    return suspended
