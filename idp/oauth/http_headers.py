"""Headers every token-endpoint response carries (RFC 6749 §5.1: no caching)."""

from __future__ import annotations

NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
