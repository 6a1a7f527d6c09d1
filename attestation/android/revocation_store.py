"""The Android revocation status list every process reads: the newest
``AndroidRevocationList`` row, shared by all web hosts through the database.

Hot path: ``current_status_list()`` answers from this process's copy while the shared
config generation is unchanged (``core/config_cache.py``), so an enrollment costs no query
once warm; ``store_status_list`` (the Celery refresh) writes a new version in one transaction
and publishes it with ``config_cache.changed()``, so every process reloads at its next
request. A download equal to the newest version changes nothing but ``checked_at`` and
publishes nothing.

Fail safe (docs/attestation.md "Revocation status list"):

* no row yet (fresh install, or the refresh never succeeded): the file
  ``ATTESTATION_ANDROID_REVOCATION_LIST_PATH`` when an operator put one there, else the list
  shipped in ``attestation/data/`` -- what a fresh install verified with before;
* a row that does not validate, or a database error reading it, or an unreadable seed file:
  fail closed, ``revocation_list_unavailable`` (an enrollment is refused, never verified
  against a list we cannot read, never a 500), logged as an error.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, transaction

from core import config_cache

from ..app_settings import app_settings
from ..errors import AttestationError, Reason
from ..models import AndroidRevocationList
from .revocation import StatusListError, load_status_list, parse_status_list, validate_entries

logger = logging.getLogger(__name__)

CACHE_KEY = ("attestation", "android-revocation-list")
KEEP_VERSIONS = 5  # the newest and the four before it stay, for the record


@dataclass(frozen=True)
class _Copy:
    revoked: dict[str, str]
    seed_file: tuple[str, int, int] | None = None  # (path, mtime, size) when read from the seed file


def current_status_list() -> dict[str, str]:
    """``{serial_hex: "REVOKED"|"SUSPENDED"}`` to refuse; raises ``AttestationError``
    (``revocation_list_unavailable``) when the stored list cannot be read. Do not mutate."""
    return config_cache.cached(CACHE_KEY, _load, fresh=_seed_unchanged).revoked


def _unavailable(detail: str) -> AttestationError:
    logger.error("android revocation list unavailable: %s", detail)
    return AttestationError(Reason.REVOCATION_LIST_UNAVAILABLE, detail)


def _load() -> _Copy:
    try:
        with transaction.atomic():  # a savepoint inside a request's transaction: an error leaves it usable
            newest = AndroidRevocationList.objects.order_by("-pk").values_list("pk", "entries").first()
    except DatabaseError as exc:
        raise _unavailable(f"database error reading the list: {type(exc).__name__}") from exc
    if newest is None:
        return _seed()
    try:
        return _Copy(validate_entries(newest[1]))
    except StatusListError as exc:
        raise _unavailable(f"stored list {newest[0]} is invalid: {exc}") from exc


def _seed_stamp(path: str) -> tuple[str, int, int]:
    stat = os.stat(path)
    return (path, stat.st_mtime_ns, stat.st_size)


def _seed() -> _Copy:
    path = app_settings.ANDROID_REVOCATION_LIST_READ_PATH
    try:
        return _Copy(load_status_list(path), _seed_stamp(path))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or StatusListError
        raise _unavailable(f"seed file {path} unreadable: {exc}") from exc


def _seed_unchanged(copy: _Copy) -> bool:
    """A copy read from the database stays for its generation; one read from the seed file
    only while that file (or the choice of file) is unchanged."""
    if copy.seed_file is None:
        return True
    try:
        return _seed_stamp(app_settings.ANDROID_REVOCATION_LIST_READ_PATH) == copy.seed_file
    except OSError:
        return False


def digest(revoked: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(revoked, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def store_status_list(document: Any, *, source: str, now: dt.datetime) -> int:
    """Validate Google's ``document`` and make it the list every process reads, atomically:
    a document that is not a status list raises ``StatusListError`` and changes nothing.
    Returns the entry count."""
    revoked = parse_status_list(document)
    sha256 = digest(revoked)
    with transaction.atomic():
        newest = AndroidRevocationList.objects.select_for_update().order_by("-pk").first()
        if newest is not None and newest.sha256 == sha256 and _valid(newest.entries):
            newest.checked_at = now
            newest.save(update_fields=["checked_at"])
            return len(revoked)
        row = AndroidRevocationList.objects.create(
            entries=revoked, entry_count=len(revoked), sha256=sha256, source=source[:500],
            fetched_at=now, checked_at=now,
        )
        _prune()
        config_cache.changed()  # on commit: every process reloads at its next request
    logger.info("android revocation list: new version %s, %d entries from %s", row.pk, len(revoked), source)
    return len(revoked)


def _valid(entries: Any) -> bool:
    try:
        validate_entries(entries)
    except StatusListError:
        return False
    return True


def _prune() -> None:
    kept = AndroidRevocationList.objects.order_by("-pk").values_list("pk", flat=True)[:KEEP_VERSIONS]
    AndroidRevocationList.objects.exclude(pk__in=list(kept)).delete()
