"""Who may read ``/metrics``, and the text Prometheus reads (docs/operations.md "Metrics").

Closed by default: with neither ``VIGIL_METRICS_TOKEN`` nor ``VIGIL_METRICS_ALLOW`` set the
endpoint answers 404, as if it did not exist. With either set, a request passes with the
bearer token (compared in constant time) or from an allowed address (the client address
``core.client_address`` resolves, so behind trusted proxies the real client, not the proxy);
any other request gets 403 with nothing but the error.

In gunicorn's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) the samples of every process
are read from that directory at each scrape; otherwise this process's registry is served.
The shared-state gauges (``ops.collector``) are computed at each scrape in both modes.
"""

from __future__ import annotations

import ipaddress
import os
from enum import Enum
from hmac import compare_digest

from django.http import HttpRequest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess

from core.client_address import client_address, parse_networks

from .app_settings import ops_settings
from .collector import SharedStateCollector


class Access(Enum):
    DISABLED = "disabled"
    GRANTED = "granted"
    REFUSED = "refused"


def access(request: HttpRequest) -> Access:
    token, allowed = ops_settings.METRICS_TOKEN, ops_settings.METRICS_ALLOW
    if not token and not allowed:
        return Access.DISABLED
    if token and _bearer_matches(request, token):
        return Access.GRANTED
    if allowed and _address_allowed(request, allowed):
        return Access.GRANTED
    return Access.REFUSED


def _bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return scheme.lower() == "bearer" and compare_digest(value.strip().encode(), token.encode())


def _address_allowed(request: HttpRequest, allowed: list[str]) -> bool:
    address = client_address(request)
    if address is None:
        return False
    parsed = ipaddress.ip_address(address)
    networks, _invalid = parse_networks(tuple(allowed))  # invalid entries: system check ops.E001
    return any(parsed.version == net.version and parsed in net for net in networks)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def render() -> bytes:
    """Every sample, in the Prometheus text format."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        samples = generate_latest(registry)
    else:
        samples = generate_latest(REGISTRY)
    shared = CollectorRegistry(auto_describe=False)
    shared.register(SharedStateCollector())
    return samples + generate_latest(shared)
