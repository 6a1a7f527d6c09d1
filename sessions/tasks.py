"""Celery tasks of the sessions app: periodic revalidation of device-bound sessions.

Each task takes primitive arguments only, re-reads everything from the database, is
idempotent (``acks_late`` is global: a task redelivered after a lost worker just runs
again) and lets errors raise so Celery retries it. The work itself lives in
``sessions/revalidation.py``; schedules are entries of ``vigil/schedule.py`` installed
into django-celery-beat (editable in the admin), see docs/operations.md.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import task_success

from attestation.android.revocation import load_status_list
from attestation.android.revocation_store import current_status_list

from . import revalidation

REFRESH_TASK = "attestation.refresh_android_revocation_list"


@shared_task(name="sessions.revalidate_device_attestations")
def revalidate_devices(batch_size: int | None = None) -> dict[str, int]:
    """Mark devices whose attestation went stale; revoke their sessions after the grace period."""
    return revalidation.revalidate_devices(batch_size=batch_size).as_dict()


@shared_task(name="sessions.suspend_revoked_android_devices")
def suspend_revoked_android_devices(path: str | None = None, batch_size: int | None = None) -> int:
    """Suspend Android devices with a certificate on the revocation status list (the file
    ``path`` when given, else the stored list every process reads). Returns the count."""
    revoked = load_status_list(path) if path else current_status_list()
    return revalidation.suspend_revoked_android_devices(revoked, batch_size=batch_size)


def _refresh_path(request: Any) -> str | None:
    """The ``path`` argument the refresh task ran with (keyword or second positional)."""
    kwargs = getattr(request, "kwargs", None) or {}
    args: tuple[Any, ...] = getattr(request, "args", None) or ()
    path = kwargs.get("path") or (args[1] if len(args) > 1 else None)
    return str(path) if path else None


@task_success.connect(weak=False, dispatch_uid="sessions.after_revocation_list_refresh")
def after_revocation_list_refresh(sender: Any = None, **kwargs: Any) -> None:
    """Chain the suspension after every successful revocation-list refresh: same file,
    same queue as the refresh ran on."""
    if getattr(sender, "name", None) != REFRESH_TASK:
        return
    request = sender.request
    queue = (getattr(request, "delivery_info", None) or {}).get("routing_key") or None
    suspend_revoked_android_devices.apply_async(kwargs={"path": _refresh_path(request)},
                                                  queue=queue)  # type: ignore[arg-type]  # None: the default queue
