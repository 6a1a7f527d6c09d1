"""``/jwks.json`` and the discovery documents answered before Django's request cycle.

Relying services fetch the JWKS far more often than anything else, and its body is already
in memory (``idp.documents``): what a request costs is Django's handler and middleware, not
the answer. This WSGI wrapper (``vigil.wsgi``) answers those GETs itself, and only when it can
answer *exactly* as Django would:

* the body is this process's copy of the document (``idp.documents.held_jwks``): it belongs to
  the current shared config generation (one cache GET per request: a key rotated on any
  instance reaches this one at its next request) and the next scheduled key transition has
  not come. Otherwise (first request, a rotation anywhere, the shared cache down, a
  transition due) Django serves the request, builds the copy, and the next one is fast again;
* the headers are those Django's middleware put on its ``200`` answers for that path and
  scheme (security headers, HSTS over HTTPS, ``Cache-Control``): learned once two answers in
  a row for the same copy agree (a header that changes from one answer to the next is never
  replayed), not written twice, so a header added to the middleware is added here too. A
  response with a cookie is never learned;
* the host is validated by Django's own ``get_host`` (``ALLOWED_HOSTS``, forwarded host only
  when trusted), and a plain-HTTP request that Django would redirect goes to Django;
* anything else (another method, a query string, an unusual request, any error) goes to
  Django unchanged. Falling through is always correct, only slower.

With observability on (``VIGIL_OBSERVABILITY``), each answer gets its request id, counts
and log line like any other (``ops.middleware.observe``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import setting_changed
from django.urls import Resolver404, resolve

from core import request_context
from idp import documents
from ops import middleware as observability

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

DOCUMENTS: dict[str, Callable[[], documents.Document | None]] = {
    "/jwks.json": documents.held_jwks,
    "/.well-known/openid-configuration": documents.held_openid_configuration,
    "/.well-known/oauth-authorization-server": documents.held_openid_configuration,
}
# Per-answer values, never replayed: the length (set per body), the request id, and the bench's
# count of the statements Django ran for that answer (bench/querycount.py; none run here).
UNLEARNED_HEADERS = frozenset({"content-length", observability.RESPONSE_HEADER.lower(), "x-bench-queries"})


@dataclass(frozen=True)
class Learned:
    """What Django answered for one path and scheme: the document it served and its headers."""

    document: documents.Document
    headers: tuple[tuple[str, str], ...]
    endpoint: str


class DocumentsFastPath:
    def __init__(self, app: WSGIApp):
        self.app = app
        self.learned: dict[tuple[str, bool], Learned] = {}
        self.candidates: dict[tuple[str, bool], Learned] = {}
        self.observed = "ops.middleware.ObservabilityMiddleware" in settings.MIDDLEWARE
        setting_changed.connect(self._forget, dispatch_uid=f"documents-fast-path-{id(self)}", weak=False)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in DOCUMENTS or environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING"):
            return self.app(environ, start_response)
        started = time.perf_counter()
        request = WSGIRequest(environ)
        secure = _secure_and_allowed(request)
        if secure is None:
            return self.app(environ, start_response)
        learned = self.learned.get((path, secure))
        if learned is None or _held(path) is not learned.document:
            return self._learn(environ, start_response, path, secure)
        return self._answer(request, start_response, learned, started)

    def _answer(self, request: WSGIRequest, start_response: StartResponse, learned: Learned,
                started: float) -> Iterable[bytes]:
        body = learned.document.body
        headers = [*learned.headers, ("Content-Length", str(len(body)))]
        if not self.observed:
            start_response("200 OK", headers)
            return [body]
        with request_context.opened(observability.request_id(request)) as context:
            start_response("200 OK", [*headers, (observability.RESPONSE_HEADER, context.request_id)])
            observability.observe(request, context, learned.endpoint, 200, time.perf_counter() - started)
        return [body]

    def _learn(self, environ: dict[str, Any], start_response: StartResponse, path: str,
               secure: bool) -> Iterable[bytes]:
        """Let Django answer; keep its headers when it served this process's held copy."""
        answer: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer.update(status=status, headers=headers)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        result = self.app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        held = _held(path)
        if held is not None and answer.get("status", "").startswith("200 ") and held.body == body:
            headers = tuple((k, v) for k, v in answer["headers"] if k.lower() not in UNLEARNED_HEADERS)
            if not any(k.lower() == "set-cookie" for k, _ in headers):
                self._confirm(path, secure, Learned(held, headers, _endpoint(path)))
        return [body]

    def _confirm(self, path: str, secure: bool, seen: Learned) -> None:
        """Learn an answer once Django gave the same one twice in a row for this copy: a header
        that changes between two answers (a per-request value) is never replayed."""
        key = (path, secure)
        if self.candidates.get(key) == seen:
            self.learned[key] = seen
        else:
            self.candidates[key] = seen

    def _forget(self, **kwargs: Any) -> None:
        self.learned.clear()
        self.candidates.clear()
        self.observed = "ops.middleware.ObservabilityMiddleware" in settings.MIDDLEWARE


def _secure_and_allowed(request: WSGIRequest) -> bool | None:
    """Whether the request came over HTTPS; ``None`` when Django must answer it (a host it
    refuses, or plain HTTP it would redirect)."""
    try:
        request.get_host()
        secure = request.is_secure()
    except (DisallowedHost, ValueError, KeyError):
        return None
    if settings.SECURE_SSL_REDIRECT and not secure:
        return None
    return secure


def _held(path: str) -> documents.Document | None:
    try:
        return DOCUMENTS[path]()
    except Exception:  # the shared cache is down, or anything else: Django answers
        return None


def _endpoint(path: str) -> str:
    try:
        return resolve(path).view_name
    except Resolver404:
        return observability.UNMATCHED
