"""Refuse NUL bytes in protocol values before any view sees them.

No protocol value may contain U+0000, and PostgreSQL cannot store it: without this a
fuzzed ``client_id`` would become a database error (a 500) instead of a clear 400. Checked:
the path, query and form parameters, the headers that carry protocol values
(``Authorization``, ``DPoP``) and the client id and secret inside a ``Basic`` header
(RFC 6749 §2.3.1, after base64 and form decoding).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from core.http_basic import BasicProblem, MalformedBasic, parse_basic
from core.http_methods import FORM_TYPES, refusal

PROTOCOL_HEADERS = ("HTTP_AUTHORIZATION", "HTTP_DPOP")
NUL_REFUSED = "Parameters must not contain NUL characters."


def _parameters_have_nul(request: HttpRequest) -> bool:
    sources = [request.GET]
    if request.method == "POST" and request.content_type in FORM_TYPES:
        sources.append(request.POST)  # parsed (or refused) by RefuseUnreadableFormsMiddleware
    for source in sources:
        for key, values in source.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                return True
    return "\x00" in request.path


def _headers_have_nul(request: HttpRequest) -> bool:
    if any("\x00" in request.META.get(name, "") for name in PROTOCOL_HEADERS):
        return True
    try:
        parse_basic(request.META.get("HTTP_AUTHORIZATION"))
    except MalformedBasic as malformed:
        # Only a NUL is refused here; other malformed Basic headers are the
        # client-authentication layer's to answer (invalid_client, RFC 6749 §5.2).
        return malformed.problem == BasicProblem.NUL
    return False


def _has_nul(request: HttpRequest) -> bool:
    return _headers_have_nul(request) or _parameters_have_nul(request)


class RejectNullBytesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request):
            return refusal(request, NUL_REFUSED)
        return self.get_response(request)
