"""Signing keys: generation, encryption at rest, rotation and the JWKS.

Lifecycle of a key (per algorithm): ``next`` (published in the JWKS, not yet signing)
→ ``active`` (signing) → ``retiring`` (published for verification until every token it
signed has expired) → ``retired`` (gone from the JWKS). ``kid`` is the RFC 7638
thumbprint of the public key. Parsed private keys are cached per process by ``kid``
so a request never decrypts or parses a key twice.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from joserfc.jwk import ECKey, OKPKey, RSAKey

from . import config_cache, crypto
from .app_settings import app_settings
from .models import Client, KeyStatus, SigningKey

JoseKey = ECKey | RSAKey | OKPKey

_private_cache: dict[str, JoseKey] = {}
_public_cache: dict[str, JoseKey] = {}
_lock = threading.Lock()


def generate_private_key(alg: str) -> JoseKey:
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True)
    if alg == "RS256":
        return RSAKey.generate_key(2048, private=True)
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", private=True)
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def max_signed_token_lifetime() -> int:
    """Longest lifetime of anything we sign (access and ID tokens), so a retiring key
    stays published until all of it has expired."""
    longest_client = Client.objects.aggregate(m=Max("access_token_lifetime"))["m"] or 0
    return max(app_settings.ACCESS_TOKEN_LIFETIME, app_settings.ID_TOKEN_LIFETIME, longest_client)


def create_key(alg: str, *, status: str, activates_at: datetime) -> SigningKey:
    private = generate_private_key(alg)
    public = private.as_dict(private=False)
    kid = private.thumbprint()
    public.update({"kid": kid, "alg": alg, "use": "sig"})
    return SigningKey.objects.create(
        kid=kid,
        alg=alg,
        status=status,
        public_jwk=public,
        private_key_encrypted=crypto.encrypt(json.dumps(private.as_dict(private=True)).encode()),
        activates_at=activates_at,
    )


def _load_private(key: SigningKey) -> JoseKey:
    cached = _private_cache.get(key.kid)
    if cached is not None:
        return cached
    data = json.loads(crypto.decrypt(key.private_key_encrypted))
    data["kid"] = key.kid
    loaded = _import(data, key.alg)
    with _lock:
        _private_cache[key.kid] = loaded
    return loaded


def _import(data: dict[str, Any], alg: str) -> JoseKey:
    if alg == "ES256":
        return ECKey.import_key(data)
    if alg == "RS256":
        return RSAKey.import_key(data)
    return OKPKey.import_key(data)


def public_key(kid: str) -> tuple[JoseKey, str] | None:
    """The published public key with this ``kid`` and its algorithm, or None."""
    cached = _public_cache.get(kid)
    if cached is not None:
        return cached, str(cached.alg)
    key = SigningKey.objects.published().filter(kid=kid).first()
    if key is None:
        return None
    loaded = _import(dict(key.public_jwk), key.alg)
    with _lock:
        _public_cache[kid] = loaded
    return loaded, key.alg


@transaction.atomic
def advance(now: datetime | None = None) -> list[str]:
    """Apply due transitions: promote ``next`` keys whose time has come, retire the keys
    they replace, drop retiring keys past ``remove_after``. Returns what changed."""
    moment = now or timezone.now()
    changes: list[str] = []
    due = SigningKey.objects.filter(
        Q(status=KeyStatus.NEXT, activates_at__lte=moment) | Q(status=KeyStatus.RETIRING, remove_after__lte=moment)
    )
    if not due.exists():
        return changes
    for key in SigningKey.objects.select_for_update().filter(status=KeyStatus.NEXT, activates_at__lte=moment):
        grace = timedelta(seconds=max_signed_token_lifetime() + 60)
        for old in SigningKey.objects.select_for_update().filter(status=KeyStatus.ACTIVE, alg=key.alg):
            old.status, old.retired_at, old.remove_after = KeyStatus.RETIRING, moment, moment + grace
            old.save(update_fields=["status", "retired_at", "remove_after"])
            changes.append(f"retiring {old.kid}")
        key.status = KeyStatus.ACTIVE
        key.save(update_fields=["status"])
        changes.append(f"active {key.kid}")
    for key in SigningKey.objects.filter(status=KeyStatus.RETIRING, remove_after__lte=moment):
        key.status = KeyStatus.RETIRED
        key.save(update_fields=["status"])
        _public_cache.pop(key.kid, None)
        _private_cache.pop(key.kid, None)
        changes.append(f"retired {key.kid}")
    return changes


def rotate(alg: str, *, now: datetime | None = None, immediately: bool = False) -> SigningKey:
    """Publish a new key for ``alg``. It signs after KEY_PUBLISH_AHEAD_SECONDS, so relying
    parties' JWKS caches learn it first; ``immediately`` skips the wait (emergency)."""
    moment = now or timezone.now()
    ahead = 0 if immediately else app_settings.KEY_PUBLISH_AHEAD_SECONDS
    key = create_key(alg, status=KeyStatus.NEXT, activates_at=moment + timedelta(seconds=ahead))
    if immediately:
        advance(moment)
        key.refresh_from_db()
    return key


def active_key(alg: str, now: datetime | None = None) -> tuple[str, JoseKey]:
    """``(kid, private key)`` that signs ``alg`` tokens now; creates the first key lazily.
    No query on the hot path: the active and waiting keys of ``alg`` come from the config
    cache (a key saved anywhere changes its generation), and a waiting key whose time has
    come is promoted here, on the first request after ``activates_at``."""
    moment = now or timezone.now()
    rows = config_cache.cached(
        ("signing-keys", alg), lambda: list(SigningKey.objects.filter(alg=alg, status__in=[KeyStatus.ACTIVE, KeyStatus.NEXT]))
    )
    active = max((k for k in rows if k.status == KeyStatus.ACTIVE), key=lambda k: k.activates_at, default=None)
    if active is None or any(k.status == KeyStatus.NEXT and k.activates_at <= moment for k in rows):
        advance(moment)
        active = SigningKey.objects.filter(status=KeyStatus.ACTIVE, alg=alg).order_by("-activates_at").first()
    if active is None:
        with transaction.atomic():
            active = create_key(alg, status=KeyStatus.ACTIVE, activates_at=moment)
    return active.kid, _load_private(active)


def ensure_keys(now: datetime | None = None) -> None:
    for alg in app_settings.SUPPORTED_SIGNING_ALGS:
        active_key(alg, now)


def jwks(now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """The public JWKS: next, active and retiring keys."""
    advance(now)
    return {"keys": [dict(k.public_jwk) for k in SigningKey.objects.published().order_by("alg", "-created_at")]}


def rotation_due(alg: str, now: datetime | None = None) -> bool:
    """True when the active key has signed for KEY_ROTATION_DAYS and no successor is waiting."""
    moment = now or timezone.now()
    if SigningKey.objects.filter(status=KeyStatus.NEXT, alg=alg).exists():
        return False
    key = SigningKey.objects.filter(status=KeyStatus.ACTIVE, alg=alg).order_by("-activates_at").first()
    return key is None or key.activates_at <= moment - timedelta(days=app_settings.KEY_ROTATION_DAYS)
