"""Recovery codes: django-otp static tokens, shown once, each usable once.

Only a keyed hash of each code is stored (``StaticToken.token`` holds 16 hex characters
of HMAC-SHA256), so a copy of the table does not reveal usable codes. Using a code is a
single conditional ``DELETE``: two concurrent uses of one code cannot both succeed.
"""

from __future__ import annotations

import secrets

from django.db import transaction
from django.http import HttpRequest
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from core import crypto
from core.events import EventType, record

from ..app_settings import app_settings
from ..models import User

DEVICE_NAME = "recovery"
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def _normalise(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch not in " -")


def _hash(code: str) -> str:
    return crypto.keyed_hash(f"recovery-code:{_normalise(code)}")[:16]


def _hashes(code: str) -> list[str]:
    """What ``code`` may be stored as: under the current secret or, for codes made before a
    rotation of ``IDP_KEY_ENCRYPTION_SECRET``, a fallback one (docs/operations.md)."""
    return [h[:16] for h in crypto.keyed_hash_candidates(f"recovery-code:{_normalise(code)}")]


def _new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))  # ~49 bits
    return f"{raw[:5]}-{raw[5:]}"


def generate(user: User, request: HttpRequest | None = None, reason: str = "generated") -> list[str]:
    """Replace the user's recovery codes with fresh ones; returns the plaintext codes (show once)."""
    codes = [_new_code() for _ in range(app_settings.RECOVERY_CODE_COUNT)]
    with transaction.atomic():
        StaticDevice.objects.filter(user=user).delete()
        device = StaticDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=True)
        StaticToken.objects.bulk_create([StaticToken(device=device, token=_hash(c)) for c in codes])
    record(EventType.FACTOR_RECOVERY_CODES_GENERATED, user=user, request=request, reason=reason, count=len(codes))
    return codes


def still_valid(user: User, codes: list[str]) -> list[str]:
    """Those of ``codes`` the user can still use: none of a set replaced since it was made."""
    if not codes:
        return []
    stored = set(StaticToken.objects.filter(device__user=user, device__confirmed=True).values_list("token", flat=True))
    return [code for code in codes if not stored.isdisjoint(_hashes(code))]


def remaining(user: User) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def use(user: User, code: str) -> bool:
    """Consume ``code`` if it is one of the user's unused recovery codes."""
    normalised = _normalise(code)
    if len(normalised) != 10 or any(ch not in _ALPHABET for ch in normalised):
        return False
    device_ids = list(StaticDevice.objects.filter(user=user, confirmed=True).values_list("pk", flat=True))
    deleted, _ = StaticToken.objects.filter(device_id__in=device_ids, token__in=_hashes(normalised)).delete()
    return deleted >= 1  # single use: of two racing uses only one deletes the row


def delete_all(user: User, request: HttpRequest | None = None, reason: str = "removed") -> None:
    deleted, _ = StaticDevice.objects.filter(user=user).delete()
    if deleted:
        record(EventType.FACTOR_RECOVERY_CODES_REMOVED, user=user, request=request, reason=reason)
