"""Answering cleanly while PostgreSQL or Redis is unreachable (docs/operations.md "Outages").

A request that fails because a backing store is down gets a 503 with ``Retry-After``, never
a traceback or a bare 500, with ``DEBUG`` on or off:

- OAuth endpoints and every JSON API: ``{"error": "temporarily_unavailable",
  "error_description": ...}``, RFC 6749 §4.1.2.1's code for exactly this, in a §5.2 body;
- pages (sign-in, consent, account, admin, logout): ``templates/outage.html``, a readable
  "try again shortly" page.

The failure is caught in three places, because Django turns an exception raised inside any
middleware into a 500 response before the middleware around it sees it
(``convert_exception_to_response``):

1. ``OutageMiddleware.process_exception`` answers for exceptions raised by a view;
2. a ``got_request_exception`` receiver marks the request when an inner middleware (sessions,
   authentication, OTP) failed that way, and ``OutageMiddleware`` replaces that 500;
3. ``OutageMiddleware`` itself catches what reaches it as an exception.

Only connection-level failures count (``dependency_of``); any other error stays an error.
Nothing is retried here: the failed request rolled back, so the client's retry after
``Retry-After`` is safe. What no rollback reaches, a count in the shared cache (``core.rates``),
is taken back by the callbacks the request left with ``outage_undo.undo_on_outage``: a client's retries
through an outage spend none of its rate. Connections come back by themselves once the store is back (Django
health-checks persistent database connections; redis-py reconnects on the next call).
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import psycopg
from django.core.signals import got_request_exception
from django.db import transaction
from django.db import utils as db_utils
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve

from . import cache as shared_cache
from . import events, metrics, outage_undo
from .app_settings import app_settings

logger = logging.getLogger("vigil.outage")

EVENT_TYPE = events.EventType.SERVICE_UNAVAILABLE
ERROR_CODE = "temporarily_unavailable"
TEMPLATE = "outage.html"
# Pages that render HTML: the sign-in and account pages, the admin, and the browser-facing
# protocol endpoints (authorization, RP-initiated logout, the device grant's code page, RFC
# 8628 §3.3). Everything else answers JSON.
HTML_APPS = frozenset({"accounts", "admin"})
HTML_URL_NAMES = frozenset({"authorize", "end-session", "device"})
PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# PostgreSQL SQLSTATE classes that mean "the server cannot serve now", not "this query is
# wrong": connection exceptions, insufficient resources (too many connections) and operator
# intervention (shut down, starting up). A client-side failure has no SQLSTATE.
PG_OUTAGE_STATES = ("08", "53", "57P")
# Conflicts PostgreSQL resolves by aborting one transaction (serialization failure, deadlock):
# nothing was written, and the same request retried succeeds, so they answer like an outage.
PG_CONFLICT_STATES = ("40001", "40P01")
SQLITE_OUTAGE_WORDS = ("locked", "unable to open", "disk i/o")


class Dependency(StrEnum):
    """The backing store an outage is about (the event's reason is ``<store>_unavailable``)."""

    DATABASE = "database"
    CACHE = "cache"


def _database_outage(exc: BaseException) -> bool:
    if isinstance(exc, (db_utils.InterfaceError, psycopg.InterfaceError)):
        return True
    if isinstance(exc, psycopg.OperationalError):
        return exc.sqlstate is None or exc.sqlstate.startswith(PG_OUTAGE_STATES + PG_CONFLICT_STATES)
    if isinstance(exc, sqlite3.OperationalError):
        return any(word in str(exc).lower() for word in SQLITE_OUTAGE_WORDS)
    if isinstance(exc, db_utils.OperationalError):
        # Django's wrapper: judge the driver's error it wraps; one it raised itself (no driver
        # error behind it) is about the connection.
        cause = exc.__cause__
        return cause is None or (isinstance(cause, Exception) and _database_outage(cause))
    return False


def dependency_of(exc: BaseException | None) -> Dependency | None:
    """Which backing store ``exc`` (or an exception it was raised from) says is unreachable."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, shared_cache.UNAVAILABLE):
            return Dependency.CACHE
        if _database_outage(exc):
            return Dependency.DATABASE
        exc, seen = exc.__cause__, seen + 1
    return None


def wants_html(request: HttpRequest) -> bool:
    """A page the browser navigates to, as opposed to a JSON endpoint (the passkey
    ceremonies under /accounts/ are fetched as JSON and say so)."""
    if "application/json" in (request.content_type or "") or _prefers_json(request):
        return False
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    return bool(HTML_APPS.intersection(match.app_names)) or match.url_name in HTML_URL_NAMES


def _prefers_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def _retry_after() -> int:
    return max(1, app_settings.OUTAGE_RETRY_AFTER_SECONDS)


def json_answer() -> HttpResponse:
    response = JsonResponse(
        {"error": ERROR_CODE, "error_description": "The service is temporarily unavailable. Retry later."},
        status=503,
    )
    return _finish(response)


def page_answer(request: HttpRequest) -> HttpResponse:
    """The readable page."""
    retry_url = "/" + request.get_full_path().lstrip("/")  # never "//host": a link off-site
    context = {"retry_url": retry_url, "retry_after": _retry_after(), "was_post": request.method == "POST"}
    fallback = "<!doctype html><title>Try again shortly</title><p>Vigil is briefly unavailable. Try again shortly.</p>"
    return _finish(standalone_page(TEMPLATE, context, 503, fallback))


def standalone_page(template: str, context: dict[str, Any], status: int, fallback: str) -> HttpResponse:
    """A page rendered without the request (no context processors: they would reach for the
    session and the user, in stores that may be down or not yet read), under a strict
    Content-Security-Policy; ``fallback`` if the template itself fails, never a 500."""
    try:
        body: str = render_to_string(template, context)
    except Exception:  # a broken template must not turn the answer into a 500
        logger.exception("%s could not be rendered", template)
        body = fallback
    response = HttpResponse(body, status=status, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = PAGE_POLICY
    return response


def _finish(response: HttpResponse) -> HttpResponse:
    response["Retry-After"] = str(_retry_after())
    response["Cache-Control"] = "no-store"
    response["X-Frame-Options"] = "DENY"
    return response


def answer(request: HttpRequest, exc: BaseException, dependency: Dependency) -> HttpResponse:
    """The 503 for ``request``, after logging and (database permitting) recording it.

    The warning on ``vigil.outage`` is the request's one log line: it names the store and the
    error. Django's own ``django.request`` ERROR ("Service Unavailable: /token") would repeat
    it without the cause, once per request for as long as the outage lasts, so the response
    is marked as logged (the flag ``django.utils.log.log_response`` sets and reads)."""
    logger.warning(
        "%s unavailable: %s %s answered 503 (%s: %s)",
        dependency,
        request.method,
        request.path,
        type(exc).__name__,
        " ".join(str(exc).split()),
    )
    metrics.dependency_error(dependency, "request")
    outage_undo.undo_all()
    _record(request, dependency, exc)
    response = page_answer(request) if wants_html(request) else json_answer()
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _record(request: HttpRequest, dependency: Dependency, exc: BaseException) -> None:
    """A security event, only when the database is the store still up; recording never
    fails the 503."""
    if dependency is Dependency.DATABASE:
        return
    try:
        with transaction.atomic():  # a failed write leaves no broken transaction behind
            events.record(
                EVENT_TYPE,
                outcome=events.Outcome.FAILURE,
                reason=f"{dependency}_unavailable",
                request=request,
                path=request.path[:200],
                method=request.method,
                error=type(exc).__name__,
            )
    except Exception:
        logger.warning("could not record %s", EVENT_TYPE, exc_info=True)


_OUTAGE_ATTR = "_vigil_outage"


def _mark_request(sender: object, request: HttpRequest | None = None, **kwargs: object) -> None:
    """``got_request_exception``: remember an outage that an inner layer turned into a 500."""
    exc = sys.exc_info()[1]
    dependency = dependency_of(exc)
    if request is not None and exc is not None and dependency is not None:
        setattr(request, _OUTAGE_ATTR, (exc, dependency))


got_request_exception.connect(_mark_request, dispatch_uid="vigil-outage-mark")


_KEPT_COOKIES_ATTR = "_vigil_kept_cookies"


def keep_cookie(request: HttpRequest, name: str, value: str, *, max_age: int, secure: bool) -> None:
    """Set cookie ``name`` on whatever answers ``request``, the 503 of an outage included.

    For a value the browser's retry must bring back: a claim made before the failure (a pushed
    request taken for this browser, ``idp.flows.authorize_request``) is recognised only if the
    503 carries it, since the session cookie is not set on a 5xx. HttpOnly, SameSite=Lax (a
    top-level navigation from the client's site sends it), path ``/``."""
    kept: dict[str, tuple[str, int, bool]] = request.__dict__.setdefault(_KEPT_COOKIES_ATTR, {})
    kept[name] = (value, max_age, secure)


def _with_kept_cookies(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    for name, (value, max_age, secure) in request.__dict__.get(_KEPT_COOKIES_ATTR, {}).items():
        response.set_cookie(name, value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="Lax")
    return response


class OutageMiddleware:
    """Place it outside every middleware that may touch the database or the cache (sessions,
    authentication, OTP, messages): after SecurityMiddleware and WhiteNoise, which touch
    neither and so still add their headers to the 503. It also sets the cookies
    ``keep_cookie`` asked for, on the 503 as on any other answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with outage_undo.collecting():
            return _with_kept_cookies(request, self._answer(request))

    def _answer(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self.get_response(request)
        except Exception as exc:
            dependency = dependency_of(exc)
            if dependency is None:
                raise
            return answer(request, exc, dependency)
        marked: tuple[BaseException, Dependency] | None = getattr(request, _OUTAGE_ATTR, None)
        if marked is not None and response.status_code >= 500:
            return answer(request, *marked)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        dependency = dependency_of(exception)
        if dependency is None:
            return None
        return answer(request, exception, dependency)


def openapi_unavailable_responses(
    result: dict[str, Any], generator: object, request: object, public: bool
) -> dict[str, Any]:
    """drf-spectacular post-processing hook: every operation of the JSON API may answer
    503 ``temporarily_unavailable`` with ``Retry-After`` (docs/operations.md "Outages")."""
    unavailable = {
        "description": "PostgreSQL or Redis is unreachable: `temporarily_unavailable`; retry after `Retry-After`.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}},
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            operation.setdefault("responses", {}).setdefault("503", unavailable)
    return result
