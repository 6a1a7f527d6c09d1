"""Celery tasks of the attestation app.

``refresh_android_revocation_list`` keeps the local copy of Google's attestation
certificate revocation status list current ("Certificate revocation status list",
developer.android.com key attestation guide). It takes no ORM objects, is idempotent
(the file is replaced atomically with what the URL serves) and lets errors raise:
network errors are retried with backoff, a document that is not a status list raises
``StatusListError`` and leaves the previous file untouched.
"""

from __future__ import annotations

import requests
from celery import shared_task

from .android.revocation import write_status_list
from .app_settings import app_settings


@shared_task(
    name="attestation.refresh_android_revocation_list",
    autoretry_for=(requests.ConnectionError, requests.Timeout),
    retry_backoff=True,
    max_retries=5,
)
def refresh_android_revocation_list(url: str | None = None, path: str | None = None) -> int:
    """Fetch the status list from ``url`` (default ``ATTESTATION_ANDROID_REVOCATION_LIST_URL``)
    into ``path`` (default ``ATTESTATION_ANDROID_REVOCATION_LIST_PATH``). Returns the entry count."""
    response = requests.get(
        url or app_settings.ANDROID_REVOCATION_LIST_URL,
        timeout=app_settings.ANDROID_HTTP_TIMEOUT,
        headers={"Cache-Control": "no-cache", "Accept": "application/json"},
    )
    response.raise_for_status()
    return write_status_list(path or app_settings.ANDROID_REVOCATION_LIST_PATH, response.json())
