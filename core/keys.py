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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from joserfc.jwk import ECKey, OKPKey, RSAKey

from . import config_cache, crypto
from .app_settings import app_settings
from .models import KeyStatus, SigningKey

JoseKey = ECKey | RSAKey | OKPKey

_private_cache: dict[str, JoseKey] = {}


class ClientKeyNeeds:
    """What registered clients add to the keys: the longest access-token lifetime any client
    has, and the signing algorithms a client may choose. Filled by ``clients`` from its
    ``AppConfig.ready()`` (``register_client_key_needs``): core imports no app."""

    longest_access_token_lifetime: Callable[[], int] = staticmethod(lambda: 0)
    signing_alg_choices: Callable[[], list[str]] = staticmethod(list)


def register_client_key_needs(longest_access_token_lifetime: Callable[[], int],
                              signing_alg_choices: Callable[[], list[str]]) -> None:
    ClientKeyNeeds.longest_access_token_lifetime = staticmethod(longest_access_token_lifetime)
    ClientKeyNeeds.signing_alg_choices = staticmethod(signing_alg_choices)
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
    longest_client = ClientKeyNeeds.longest_access_token_lifetime()
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
    """The published public key with this ``kid`` and its algorithm, or None. Whether it is
    still published comes from the config cache, so a key retired or withdrawn by any
    process (a worker's rotation, another web instance) stops verifying here at the next
    request; only the parsed key, which a ``kid`` (its thumbprint) fixes, is kept by ``kid``."""
    key = config_cache.cached(("published-key", kid), lambda: SigningKey.objects.published().filter(kid=kid).first())
    if key is None:
        return None
    loaded = _public_cache.get(kid)
    if loaded is None:
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
    due_next = SigningKey.objects.select_for_update().filter(status=KeyStatus.NEXT, activates_at__lte=moment)
    for key in due_next.order_by("activates_at", "created_at"):
        current = SigningKey.objects.select_for_update().filter(status=KeyStatus.ACTIVE, alg=key.alg)
        if current.filter(created_at__gt=key.created_at).exists():
            changes += [f"withdrawn {kid}" for kid in _withdraw([key], moment)]  # queued before the signer: stale
            continue
        grace = timedelta(seconds=max_signed_token_lifetime() + 60)
        for old in current:
            old.status, old.retired_at, old.remove_after = KeyStatus.RETIRING, moment, moment + grace
            old.save(update_fields=["status", "retired_at", "remove_after"])
            changes.append(f"retiring {old.kid}")
        key.status = KeyStatus.ACTIVE
        key.save(update_fields=["status"])
        changes.append(f"active {key.kid}")
    for key in SigningKey.objects.filter(status=KeyStatus.RETIRING, remove_after__lte=moment):
        key.status = KeyStatus.RETIRED
        key.save(update_fields=["status"])
        _forget(key.kid)
        changes.append(f"retired {key.kid}")
    return changes


def _forget(kid: str) -> None:
    _public_cache.pop(kid, None)
    _private_cache.pop(kid, None)


def _withdraw(queued: Iterable[SigningKey], moment: datetime) -> list[str]:
    """Drop ``next`` keys that must never sign. They signed nothing, so they leave the JWKS
    at once, with no retiring period. Returns their ``kid``."""
    withdrawn = []
    for key in queued:
        key.status, key.retired_at, key.remove_after = KeyStatus.RETIRED, moment, moment
        key.save(update_fields=["status", "retired_at", "remove_after"])
        _forget(key.kid)
        withdrawn.append(key.kid)
    return withdrawn


def rotate(alg: str, *, now: datetime | None = None, immediately: bool = False) -> SigningKey:
    """Publish a new key for ``alg``. It signs after KEY_PUBLISH_AHEAD_SECONDS, so relying
    parties' JWKS caches learn it first; ``immediately`` is :func:`rotate_now`."""
    if immediately:
        return rotate_now(alg, now=now)[0]
    moment = now or timezone.now()
    activates_at = moment + timedelta(seconds=app_settings.KEY_PUBLISH_AHEAD_SECONDS)
    return create_key(alg, status=KeyStatus.NEXT, activates_at=activates_at)


@transaction.atomic
def rotate_now(alg: str, *, now: datetime | None = None) -> tuple[SigningKey, list[str]]:
    """Emergency rotation: a new key for ``alg`` signs at once, and every key still queued
    for ``alg`` is withdrawn (each was made before the emergency, and left queued it would
    replace the emergency key when its time came). Returns the key and the withdrawn ``kid``."""
    moment = now or timezone.now()
    withdrawn = _withdraw(SigningKey.objects.select_for_update().filter(status=KeyStatus.NEXT, alg=alg), moment)
    key = create_key(alg, status=KeyStatus.NEXT, activates_at=moment)
    advance(moment)
    key.refresh_from_db()
    return key, withdrawn


def active_key(alg: str, now: datetime | None = None) -> tuple[str, JoseKey]:
    """``(kid, private key)`` that signs ``alg`` tokens now; on a fresh database it creates the
    first key of every algorithm (:func:`ensure_keys`). No query on the hot path: the active
    and waiting keys of ``alg`` come from the config cache (a key saved anywhere changes its
    generation), and a waiting key whose time has come is promoted here, on the first
    request after ``activates_at``."""
    moment = now or timezone.now()
    rows = config_cache.cached(
        ("signing-keys", alg),
        lambda: list(SigningKey.objects.filter(alg=alg, status__in=[KeyStatus.ACTIVE, KeyStatus.NEXT])),
    )
    active = max((k for k in rows if k.status == KeyStatus.ACTIVE), key=lambda k: k.activates_at, default=None)
    if active is None or any(k.status == KeyStatus.NEXT and k.activates_at <= moment for k in rows):
        advance(moment)
        active = _current(alg)
    if active is None:
        ensure_keys(moment, extra=[alg])
        active = _current(alg)
    if active is None:
        raise RuntimeError(f"no signing key for {alg!r}")
    return active.kid, _load_private(active)


def _current(alg: str) -> SigningKey | None:
    return SigningKey.objects.filter(status=KeyStatus.ACTIVE, alg=alg).order_by("-activates_at").first()


def signing_algs() -> list[str]:
    """Every algorithm a token may be signed with: those a client may choose (the model's
    choices and IDP_SUPPORTED_SIGNING_ALGS) and IDP_SIGNING_ALG."""
    choices = ClientKeyNeeds.signing_alg_choices()
    return list(dict.fromkeys([*app_settings.SUPPORTED_SIGNING_ALGS, *choices, app_settings.SIGNING_ALG]))


def ensure_keys(now: datetime | None = None, *, extra: Iterable[str] = ()) -> list[str]:
    """First start: give every signing algorithm without an active key one that signs at
    once, all together, so the first JWKS anyone reads (or the first token anyone signs)
    already holds every key. A first key needs no publish-ahead: no relying party can hold
    a JWKS without it. Safe under concurrency: a unique constraint allows one active key
    per algorithm, and a loser of the race keeps the winner's. Returns the algorithms
    that got a key."""
    moment = now or timezone.now()
    have = set(SigningKey.objects.filter(status=KeyStatus.ACTIVE).values_list("alg", flat=True))
    created = []
    for alg in dict.fromkeys([*extra, *signing_algs()]):
        if alg not in have and _create_first_key(alg, moment):
            created.append(alg)
    return created


def _create_first_key(alg: str, moment: datetime) -> bool:
    try:
        with transaction.atomic():
            create_key(alg, status=KeyStatus.ACTIVE, activates_at=moment)
    except IntegrityError:
        return False  # another process created it first (idp_one_active_key_per_alg)
    return True


@dataclass(frozen=True)
class PublishedKeys:
    """The JWKS and the moment it next changes by itself: the earliest ``activates_at`` of a
    waiting key (its promotion may withdraw a stale one) or ``remove_after`` of a retiring
    one. None when no transition is scheduled. Until then only a saved key changes it."""

    jwks: dict[str, list[dict[str, Any]]]
    valid_until: datetime | None


def published_keys(now: datetime | None = None) -> PublishedKeys:
    """The public JWKS (RFC 7517 §5): next, active and retiring keys, after applying the
    transitions due. On a fresh database the first read creates the first key of every signing
    algorithm, so a relying party that loads the JWKS at start-up can verify the very first token."""
    moment = now or timezone.now()
    advance(moment)
    published = list(SigningKey.objects.published().order_by("alg", "-created_at"))
    if not set(signing_algs()) <= {k.alg for k in published if k.status == KeyStatus.ACTIVE}:
        ensure_keys(moment)
        published = list(SigningKey.objects.published().order_by("alg", "-created_at"))
    return PublishedKeys({"keys": [dict(k.public_jwk) for k in published]}, _next_transition(published))


def _next_transition(published: Iterable[SigningKey]) -> datetime | None:
    moments = [k.activates_at for k in published if k.status == KeyStatus.NEXT]
    moments += [k.remove_after for k in published if k.status == KeyStatus.RETIRING and k.remove_after]
    return min(moments, default=None)


def jwks(now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """:func:`published_keys`' JWKS."""
    return published_keys(now).jwks


def rotation_due(alg: str, now: datetime | None = None) -> bool:
    """True when the active key has signed for KEY_ROTATION_DAYS and no successor is waiting."""
    moment = now or timezone.now()
    if SigningKey.objects.filter(status=KeyStatus.NEXT, alg=alg).exists():
        return False
    key = SigningKey.objects.filter(status=KeyStatus.ACTIVE, alg=alg).order_by("-activates_at").first()
    return key is None or key.activates_at <= moment - timedelta(days=app_settings.KEY_ROTATION_DAYS)
