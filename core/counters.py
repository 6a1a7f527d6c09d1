"""Windowed counters in the shared cache (login throttles, attestation failure streaks)."""

from __future__ import annotations

from django.core.cache import cache


def incr_in_window(key: str, window_seconds: int) -> int:
    """Add one to ``key``, which lives ``window_seconds`` from its first increment; the new count."""
    if cache.add(key, 1, window_seconds):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, window_seconds)
        return 1
