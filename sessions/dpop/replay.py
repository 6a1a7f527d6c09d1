"""The proof ``jti`` replay cache (RFC 9449 §11.1).

Each accepted ``(jkt, jti)`` is remembered in a Django cache shared by every web process
(``SESSIONS_DPOP_REPLAY_CACHE``; Redis in production) with ``cache.add``, which is atomic:
of two concurrent requests carrying the same proof, exactly one adds the key. An entry lives
as long as the proof could still pass the ``iat`` check, and no longer. Keys are hashed, so
an attacker's ``jti`` never reaches the cache verbatim and keys have a fixed length. An attested
refresh adds the same key with its challenge's claim (``core.cache.claiming_first``, a Redis
``SET NX`` in one script): the same atomic add, in one round trip.
"""

from __future__ import annotations

import hashlib
import math

from django.core.cache import BaseCache, caches

from ..app_settings import app_settings

KEY_PREFIX = "vigil:dpop:jti:"


def replay_key(jkt: str, jti: str) -> str:
    digest = hashlib.sha256(f"{jkt}\x00{jti}".encode("utf-8", "surrogatepass")).hexdigest()
    return KEY_PREFIX + digest


def replay_cache() -> BaseCache:
    return caches[app_settings.DPOP_REPLAY_CACHE]


def remember_jti(jkt: str, jti: str, *, timeout: float, cache: BaseCache | None = None) -> bool:
    """Record a proof as used. False when the same key already used this ``jti`` (a replay).

    ``timeout`` is in seconds (rounded up, at least 1).
    """
    store = cache if cache is not None else replay_cache()
    return bool(store.add(replay_key(jkt, jti), 1, timeout=max(1, math.ceil(timeout))))
