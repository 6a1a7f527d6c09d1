"""The Android attestation certificate revocation status list.

Google publishes it at https://android.googleapis.com/attestation/status as
``{"entries": {"<serial, lower-case hex>": {"status": "REVOKED"|"SUSPENDED",
"reason": ..., "comment": ..., "expires": ...}}}`` ("Certificate revocation status
list", developer.android.com key attestation guide). Every certificate of a chain
whose serial is listed, either REVOKED or SUSPENDED, is refused.

This module is pure (parsing, validation, files). The list verification reads is the
newest database row (``revocation_store.current_status_list``), which
``attestation.tasks.refresh_android_revocation_list`` replaces; a file in this format
(``ATTESTATION_ANDROID_REVOCATION_LIST_PATH``, else the shipped empty one) is read only while
the database holds no list.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

STATUSES = frozenset({"REVOKED", "SUSPENDED"})

_cache: dict[str, tuple[int, int, dict[str, str]]] = {}
_lock = threading.Lock()


class StatusListError(ValueError):
    """The document is not a revocation status list in Google's format."""


def normalise_serial(serial: str) -> str:
    """``"00ABc"`` -> ``"abc"``: lower-case hex without leading zeros."""
    return format(int(serial.strip(), 16), "x")


def parse_status_list(document: Any) -> dict[str, str]:
    """Validate Google's JSON shape and return ``{serial_hex: status}``."""
    if not isinstance(document, dict) or not isinstance(document.get("entries"), dict):
        raise StatusListError('expected an object with an "entries" object')
    revoked: dict[str, str] = {}
    for serial, entry in document["entries"].items():
        if not isinstance(serial, str) or not isinstance(entry, dict):
            raise StatusListError(f"entry {serial!r} is not an object keyed by a serial")
        status = entry.get("status")
        if status not in STATUSES:
            raise StatusListError(f"entry {serial!r} has unknown status {status!r}")
        try:
            revoked[normalise_serial(serial)] = status
        except ValueError as exc:
            raise StatusListError(f"serial {serial!r} is not hexadecimal") from exc
    return revoked


def validate_entries(entries: Any) -> dict[str, str]:
    """``entries`` as stored (``{serial_hex: status}``, serials normalised), or ``StatusListError``."""
    if not isinstance(entries, dict):
        raise StatusListError("stored entries are not an object")
    for serial, status in entries.items():
        if status not in STATUSES:
            raise StatusListError(f"stored entry {serial!r} has unknown status {status!r}")
        try:
            normalised = normalise_serial(serial)
        except (ValueError, AttributeError) as exc:
            raise StatusListError(f"stored serial {serial!r} is not hexadecimal") from exc
        if normalised != serial:
            raise StatusListError(f"stored serial {serial!r} is not normalised")
    return entries


def load_status_list(path: str | os.PathLike[str]) -> dict[str, str]:
    """The parsed list at ``path``, re-read only when the file changes (mtime, size)."""
    file = Path(path)
    stat = file.stat()
    key = str(file.resolve())
    with _lock:
        cached = _cache.get(key)
        if cached and cached[0] == stat.st_mtime_ns and cached[1] == stat.st_size:
            return cached[2]
    revoked = parse_status_list(json.loads(file.read_bytes()))
    with _lock:
        _cache[key] = (stat.st_mtime_ns, stat.st_size, revoked)
    return revoked


def write_status_list(path: str | os.PathLike[str], document: Any) -> int:
    """Validate ``document`` and replace the file atomically. Returns the entry count."""
    revoked = parse_status_list(document)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".status-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(revoked)
