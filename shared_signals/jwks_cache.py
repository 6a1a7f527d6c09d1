"""A transmitter's signing keys: its static JWKS, or its ``jwks_uri`` fetched with
``core.outbound`` (public addresses only, a deadline for the whole fetch, no redirects,
size cap) and kept in the shared cache for
``IDP_SSF_JWKS_CACHE_SECONDS``. An unknown ``kid`` may refetch, at most every
``IDP_SSF_JWKS_MIN_REFETCH_SECONDS`` (key rotation without letting forged ``kid``s
hammer the transmitter).

That interval also bounds fetches that *fail*: each attempt is marked in the shared cache
for ``IDP_SSF_JWKS_MIN_REFETCH_SECONDS`` (``cache.add``, so concurrent pushes try once),
and while the mark stands no other push fetches: a JWKS that is down or slow is not asked
again for every push that arrives (anyone may push), and no web worker waits out its
timeout more than once per interval."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from django.core.cache import cache

from core import outbound
from core.json_shapes import mapping

from .app_settings import app_settings
from .models import SsfTransmitter
from .set_tokens import SetError, SetErrorCode

MAX_JWKS_BYTES = 64 * 1024
logger = logging.getLogger(__name__)


def _cache_key(transmitter: SsfTransmitter) -> str:
    return f"ssf:jwks:{transmitter.pk}"


def _attempt_key(transmitter: SsfTransmitter) -> str:
    return f"ssf:jwks-attempt:{transmitter.pk}"


def _may_attempt(transmitter: SsfTransmitter) -> bool:
    """Marks a fetch attempt; False while another attempt's mark stands."""
    return bool(cache.add(_attempt_key(transmitter), 1, timeout=app_settings.JWKS_MIN_REFETCH_SECONDS))


def fetch(url: str, *, transmitter: str = "") -> dict[str, Any]:
    """GET a JWKS; ``SetError(invalid_key, status=503)`` when it cannot be had now. The fetch
    runs on a web worker during a push, so ``core.outbound`` bounds it in all
    (``IDP_SSF_HTTP_TIMEOUT``) and refuses a host that resolves to an internal address (the
    refusal's event names the ``transmitter``)."""
    try:
        reply = outbound.request("GET", url, purpose=outbound.Purpose.SSF_JWKS, deadline=app_settings.HTTP_TIMEOUT,
                                 max_bytes=MAX_JWKS_BYTES, headers={"Accept": "application/json"},
                                 event_fields={"transmitter": transmitter} if transmitter else None)
    except outbound.OutboundError as exc:
        logger.warning("ssf: the JWKS at %s cannot be fetched: %s", url, exc)
        raise SetError(SetErrorCode.INVALID_KEY, "the transmitter's JWKS cannot be fetched now", status=503) from None
    if reply.status != 200 or reply.oversize:
        raise SetError(SetErrorCode.INVALID_KEY, "the transmitter's JWKS cannot be fetched now", status=503)
    raw = reply.body
    try:
        jwks = json.loads(raw)
    except (ValueError, UnicodeError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        raise SetError(SetErrorCode.INVALID_KEY, "the transmitter's JWKS is not JSON", status=503) from exc
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise SetError(SetErrorCode.INVALID_KEY, "the transmitter's JWKS has no keys", status=503)
    return jwks


def keys_for(transmitter: SsfTransmitter, *, now: datetime, refresh: bool = False) -> dict[str, Any]:
    """The transmitter's JWKS (static first; else cached or fetched)."""
    if mapping(transmitter.jwks).get("keys"):
        return dict(transmitter.jwks)
    if not transmitter.jwks_uri:
        raise SetError(SetErrorCode.INVALID_KEY, "no keys are configured for this transmitter")
    cached = cache.get(_cache_key(transmitter))
    if cached is not None and not refresh:
        return dict(cached["jwks"])
    if not _may_attempt(transmitter):
        if cached is not None:
            return dict(cached["jwks"])  # the refresh waits: an unknown kid stays unknown
        raise SetError(SetErrorCode.INVALID_KEY, "the transmitter's JWKS cannot be fetched now", status=503)
    jwks = fetch(transmitter.jwks_uri, transmitter=transmitter.name)
    cache.set(_cache_key(transmitter), {"jwks": jwks, "at": now.timestamp()}, app_settings.JWKS_CACHE_SECONDS)
    return jwks


def may_refetch(transmitter: SsfTransmitter, *, now: datetime) -> bool:
    """A fetched JWKS older than the minimum refetch interval may be refreshed for a new ``kid``."""
    if mapping(transmitter.jwks).get("keys") or not transmitter.jwks_uri:
        return False
    cached = cache.get(_cache_key(transmitter))
    return cached is None or now.timestamp() - float(cached["at"]) >= app_settings.JWKS_MIN_REFETCH_SECONDS
