"""Celery tasks of the attestation app.

``refresh_android_revocation_list`` keeps Google's attestation certificate revocation
status list current in the database, where every web instance reads it ("Certificate
revocation status list", developer.android.com key attestation guide). It takes no ORM
objects, is idempotent (the same document changes only ``checked_at``) and lets errors
raise: network errors are retried with backoff, a document that is not a status list
raises ``StatusListError``, is logged, and leaves the stored list untouched.
"""

from __future__ import annotations

import datetime as dt
import logging

import requests
from celery import shared_task
from django.utils import timezone

from .android.revocation import StatusListError, write_status_list
from .android.revocation_store import store_status_list
from .app_settings import app_settings
from .apple.devicecheck import DeviceCheckUnavailable
from .flows.devicecheck import flag_device
from .models import Device

logger = logging.getLogger(__name__)


@shared_task(
    name="attestation.refresh_android_revocation_list",
    autoretry_for=(requests.ConnectionError, requests.Timeout),
    retry_backoff=True,
    max_retries=5,
)
def refresh_android_revocation_list(url: str | None = None, path: str | None = None) -> int:
    """Fetch the status list from ``url`` (default ``ATTESTATION_ANDROID_REVOCATION_LIST_URL``)
    and store it for every process (``revocation_store.store_status_list``); with ``path``, also
    write a copy there (a mirror file for other tools). Returns the entry count."""
    source = url or app_settings.ANDROID_REVOCATION_LIST_URL
    response = requests.get(
        source,
        timeout=app_settings.ANDROID_HTTP_TIMEOUT,
        headers={"Cache-Control": "no-cache", "Accept": "application/json"},
    )
    response.raise_for_status()
    try:
        document = response.json()
        count = store_status_list(document, source=source, now=timezone.now())
    except ValueError as exc:  # not JSON, or not a status list: the stored list stays
        logger.warning("android revocation list: refused the download from %s, keeping the stored list: %s",
                       source, exc)
        raise StatusListError(str(exc)) from exc
    if path:
        write_status_list(path, document)
    return count


@shared_task(
    name="attestation.devicecheck_flag_device",
    autoretry_for=(DeviceCheckUnavailable,),
    retry_backoff=True,
    retry_backoff_max=3600,
    max_retries=10,
)
def devicecheck_flag_device(device_pk: int, bit: int | None = None) -> bool:
    """Set the abuse bit at Apple for a device an operator revoked and flagged
    (``registry.revoke_and_flag_device``). Idempotent; Apple failing raises and is retried
    with backoff. Returns whether the bit is set."""
    device = Device.objects.select_related("app__client").get(pk=device_pk)
    if device.devicecheck_flag_requested_at is None:
        return False
    chosen = app_settings.DEVICECHECK_ABUSE_BIT if bit is None else (1 if bit == 1 else 0)
    return flag_device(device, bit=chosen, now=timezone.now())


FLAG_IN_FLIGHT = dt.timedelta(minutes=10)  # younger requests are still being tried by their own task
FLAG_GIVE_UP = dt.timedelta(days=7)  # older ones stay pending in the admin, not retried for ever


@shared_task(name="attestation.devicecheck_flag_pending")
def devicecheck_flag_pending() -> int:
    """Queue ``devicecheck_flag_device`` again for every flag requested between 10 minutes and
    7 days ago that Apple has not confirmed and whose token Apple has not refused. Returns how
    many were queued."""
    now = timezone.now()
    pks = list(
        Device.objects.filter(devicecheck_flag_requested_at__lte=now - FLAG_IN_FLIGHT,
                              devicecheck_flag_requested_at__gte=now - FLAG_GIVE_UP, devicecheck_flagged_at=None)
        .exclude(devicecheck_token_encrypted="")  # Apple refused the token: nothing left to send
        .values_list("pk", flat=True)
    )
    for pk in pks:
        devicecheck_flag_device.delay(pk)
    return len(pks)
