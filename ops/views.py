"""The operations endpoints: ``/healthz``, ``/readyz``, ``/metrics`` (docs/operations.md).

``ops.middleware`` answers them before any other middleware (no host check, no HTTPS
redirect, no session, no throttle), so a probe over plain HTTP to the pod's address works
and costs next to nothing; the URL patterns (``ops/urls.py``) name them."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from prometheus_client import CONTENT_TYPE_LATEST

from . import exposition, health

SAFE_METHODS = frozenset({"GET", "HEAD"})


def _finish(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _method_not_allowed() -> HttpResponse:
    response = JsonResponse({"error": "method_not_allowed"}, status=405)
    response["Allow"] = "GET, HEAD"
    return _finish(response)


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches no database, cache or key."""
    if request.method not in SAFE_METHODS:
        return _method_not_allowed()
    return _finish(JsonResponse({"status": "ok"}))


def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: 200 when the database, the shared cache and a signing key are usable;
    503 with each check's result and the first failure's ``reason`` otherwise."""
    if request.method not in SAFE_METHODS:
        return _method_not_allowed()
    result = health.readiness()
    response = _finish(JsonResponse(result.as_json(), status=200 if result.ready else 503))
    # ops.health logged the failed check; Django's "Service Unavailable" line would repeat it
    # at every probe (the flag django.utils.log.log_response reads).
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus's scrape target, for a bearer token or an allowed address only."""
    if request.method not in SAFE_METHODS:
        return _method_not_allowed()
    allowed = exposition.access(request)
    if allowed is exposition.Access.DISABLED:  # the very answer of a path that does not exist
        return page_not_found(request, Http404())
    if allowed is exposition.Access.REFUSED:
        response = _finish(JsonResponse({"error": "forbidden"}, status=403))
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return _finish(HttpResponse(exposition.render(), content_type=CONTENT_TYPE_LATEST))
