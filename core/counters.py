"""Windowed counters in the shared cache (login throttles, attestation failure streaks)."""

from __future__ import annotations

from django.core.cache import cache

from .cache import settle_first


def incr_in_window(key: str, window_seconds: int) -> int:
    """Add one to ``key``, which lives ``window_seconds`` from its first increment; the new count.
    A request's pending first claim (its DPoP proof's ``jti``) is made before: nothing is counted
    for a replayed proof."""
    settle_first()
    if cache.add(key, 1, window_seconds):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window_seconds)
        return 1
