"""Refuse NUL bytes in query and form parameters before any view sees them.

No protocol value may contain U+0000, and PostgreSQL cannot store it: without this a
fuzzed ``client_id`` would become a database error (a 500) instead of a clear 400.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse


def _has_nul(request: HttpRequest) -> bool:
    sources = [request.GET]
    if request.method == "POST" and request.content_type in {
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }:
        sources.append(request.POST)
    for source in sources:
        for key, values in source.lists():
            if "\x00" in key or any("\x00" in value for value in values):
                return True
    return "\x00" in request.path


class RejectNullBytesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request):
            return JsonResponse(
                {"error": "invalid_request", "error_description": "Parameters must not contain NUL characters."},
                status=400,
            )
        return self.get_response(request)
