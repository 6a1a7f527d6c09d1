"""Request shapes refused before any view or CSRF check looks at them: a method the view
does not allow (405), a form body that cannot be parsed, is too large or was cut off (400).

Methods:

Django's CSRF middleware runs before a view's ``require_http_methods``; an unknown method
(``QUERY``, ``PROPFIND``...) therefore got a 403 CSRF page instead of RFC 9110 §15.5.6's
405 with ``Allow``. ``allow_methods`` records the methods on the view and the middleware
answers 405 first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
    RawPostDataException,
    UnreadablePostError,
)
from django.http.multipartparser import MultiPartParserError
from django.utils import translation
from django.views.decorators.http import require_http_methods

from . import locale, outage


def allow_methods(*methods: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """``require_http_methods`` that also tells ``RefuseUnsupportedMethodsMiddleware``."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        wrapped = require_http_methods(list(methods))(view)
        wrapped.allowed_methods = tuple(methods)  # type: ignore[attr-defined]  # copied up by functools.wraps
        return wrapped

    return decorator


class RefuseUnsupportedMethodsMiddleware:
    """Placed before ``CsrfViewMiddleware``: a method the view does not allow is a 405."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> HttpResponse | None:
        allowed = getattr(view, "allowed_methods", None)
        if allowed and request.method not in allowed:
            return HttpResponseNotAllowed(allowed)
        return None


FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}
UNREADABLE = "The form body cannot be read: send UTF-8 application/x-www-form-urlencoded."
TOO_LARGE = "The form body has too many fields or is too large for this server: send only the request's parameters."
INTERRUPTED = "The form body was cut off before it arrived: send the request again."
BAD_REQUEST_TEMPLATE = "bad_request.html"


def _unreadable_form(request: HttpRequest) -> str | None:
    """Why the form body of ``request`` cannot be parsed (then or later), or None."""
    try:
        request.POST  # noqa: B018  (parse once; Django caches it)
    except (BadRequest, MultiPartParserError):
        return UNREADABLE
    except SuspiciousOperation as refused:  # RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
        # Logged where Django's own handler would have logged it.
        logging.getLogger(f"django.security.{type(refused).__name__}").error(str(refused))
        return TOO_LARGE
    except UnreadablePostError:  # the client went away mid-body (runserver; gunicorn: slow_clients)
        return INTERRUPTED
    return None


def raw_body(request: HttpRequest) -> bytes:
    """The request's bytes, for a view that reads them (JSON, a Security Event Token). A
    multipart body was consumed by the form parser (``RefuseUnreadableFormsMiddleware`` parses
    every form POST; Django streams multipart bodies and keeps no copy): empty then, so such a
    view refuses it as the wrong format it is, never with a 500."""
    try:
        return request.body
    except RawPostDataException:
        return b""


def refusal(request: HttpRequest, description: str) -> HttpResponse:
    """A request refused before any view reads it: RFC 6749 §5.2's ``invalid_request`` JSON
    body, or, on a page people see (``core.outage.wants_html``: sign-in, account, admin,
    authorization, logout, device code), a readable page saying nothing was done."""
    if not outage.wants_html(request):
        return JsonResponse({"error": "invalid_request", "error_description": description}, status=400)
    fallback = "<!doctype html><title>Request not understood</title><p>Nothing was done. Go back and try again.</p>"
    with translation.override(locale.language_for(request, from_the_request=False)):
        response = outage.standalone_page(BAD_REQUEST_TEMPLATE, {"description": description}, 400, fallback)
        response["Content-Language"] = translation.get_language()
    response["Cache-Control"] = "no-store"
    response["Vary"] = "Accept-Language, Cookie"
    return response


class RefuseUnreadableFormsMiddleware:
    """A form body Django cannot parse (a non-UTF-8 charset, RFC 6749 Appendix B; a multipart
    body without a valid boundary; more fields or bytes than ``DATA_UPLOAD_MAX_*`` allow; a
    body cut off mid-way) is a clear 400 (``refusal``), not Django's bare HTML 400 page or a
    500. Placed before anything that reads ``request.POST``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.content_type in FORM_TYPES:
            problem = _unreadable_form(request)
            if problem is not None:
                return refusal(request, problem)
        return self.get_response(request)
