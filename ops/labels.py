"""Label values that name a client: a registered client id, never anything a caller typed."""

from __future__ import annotations

from django.db import DatabaseError

from clients.models import Client
from core import config_cache
from core.metrics import NONE, OTHER

from .app_settings import ops_settings


def client(client_id: str) -> str:
    """``client_id`` when it is one of the first ``VIGIL_METRICS_MAX_CLIENTS`` registered
    clients, else ``other`` (an unknown id sent by anyone must not become a series)."""
    if not client_id:
        return NONE
    try:
        registered = config_cache.cached(("ops", "metric-clients"), _registered)
    except DatabaseError:  # counting during an outage: the event is logged; the label is unknown
        return OTHER
    return client_id if client_id in registered else OTHER


def _registered() -> frozenset[str]:
    limit = max(0, ops_settings.METRICS_MAX_CLIENTS)
    return frozenset(Client.objects.order_by("pk").values_list("client_id", flat=True)[:limit])
