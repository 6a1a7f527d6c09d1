"""Every request: an id, a latency sample, a count and one JSON log line; and the probes.

``ObservabilityMiddleware`` is the outermost middleware (``vigil/settings.py``):

- **Request id.** A trusted proxy's ``X-Request-ID`` (``VIGIL_REQUEST_ID_HEADER``, believed
  only from ``VIGIL_TRUSTED_PROXIES``, and only a plain token of at most 64 characters) or a
  new random id; returned in ``X-Request-ID``, stored on every security event the request
  records and written on every log line while it runs (``core.request_context``).
- **Metrics.** ``vigil_http_requests_total{endpoint,method,status}`` and
  ``vigil_http_request_duration_seconds{endpoint,status_class}``; ``endpoint`` is the URL
  name the request resolved to (``idp:token``…), ``unmatched`` when none, never the raw
  path, so a scanner's paths add no series. Two counter updates per request.
- **Log line.** ``vigil.request`` (INFO): method, path, endpoint, status, duration, request
  id and, once a flow has recorded a security event, its client, event and outcome.
- **Probes.** ``/healthz``, ``/readyz`` and ``/metrics`` are answered here, before the host
  check, the HTTPS redirect, sessions and throttles: a kubelet probing the pod's address over
  plain HTTP gets the answer, never a 400 or a redirect.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from core import metrics, request_context
from core.client_address import from_trusted_proxy

from . import views
from .app_settings import ops_settings

logger = logging.getLogger("vigil.request")

RESPONSE_HEADER = "X-Request-ID"
REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+=/-]{1,64}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
PROBES: dict[str, tuple[str, Callable[[HttpRequest], HttpResponse]]] = {
    "/healthz": ("ops:healthz", views.healthz),
    "/readyz": ("ops:readyz", views.readyz),
    "/metrics": ("ops:metrics", views.metrics),
}


def request_id(request: HttpRequest) -> str:
    """The proxy's id when the peer is a trusted proxy and the id is a plain token; else new."""
    header = "HTTP_" + ops_settings.REQUEST_ID_HEADER.upper().replace("-", "_")
    given = request.META.get(header)
    if given and REQUEST_ID.fullmatch(given) and from_trusted_proxy(request):
        return given
    return secrets.token_hex(16)


def _endpoint(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else UNMATCHED


class ObservabilityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        with request_context.opened(request_id(request)) as context:
            probe = PROBES.get(request.path_info)
            if probe is not None:
                endpoint, view = probe
                response = view(request)
            else:
                response = self.get_response(request)
                endpoint = _endpoint(request)
            response[RESPONSE_HEADER] = context.request_id
            observe(request, context, endpoint, response.status_code, time.perf_counter() - started)
        return response


def observe(request: HttpRequest, context: request_context.RequestContext, endpoint: str, status: int,
            elapsed: float) -> None:
    """Count and log one answered request (also for answers given before Django's handler)."""
    _count(endpoint, request.method or "", status, elapsed)
    if logger.isEnabledFor(logging.INFO):
        _log(request, status, context, endpoint, elapsed)


def _count(endpoint: str, method: str, status: int, elapsed: float) -> None:
    # ``endpoint`` needs no bound: URL names come from the URL configuration, not the request.
    metrics.HTTP_REQUESTS.labels(endpoint, method if method in METHODS else metrics.OTHER, str(status)).inc()
    metrics.HTTP_DURATION.labels(endpoint, f"{status // 100}xx").observe(elapsed)


def _log(request: HttpRequest, status: int, context: request_context.RequestContext, endpoint: str,
         elapsed: float) -> None:
    line = {
        "message": "request",
        "method": request.method,
        "path": request.path_info[:200],
        "endpoint": endpoint,
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
        "request_id": context.request_id,
        "client_id": context.client_id or None,
        "event": context.event or None,
        "outcome": context.outcome or None,
        "reason": context.reason or None,
    }
    logger.info("request", extra={"event": line})
