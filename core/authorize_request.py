"""The authorization request a page serves, for what the page shows (language, app brand).

The authorize endpoint's own pages (consent, account chooser, errors) carry the request in
their query; the sign-in pages carry it as ``next`` (a path on this origin pointing at the
authorize endpoint). Only *display* reads this: the authorize endpoint validates the
request itself whenever it acts on it.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

MAX_NEXT = 4000


def _authorize_path() -> str:
    try:
        return reverse("authorize")
    except NoReverseMatch:
        return "/authorize"


def authorize_query(request: HttpRequest) -> dict[str, str] | None:
    """The authorization request's parameters (first value of each), or None."""
    memo: dict[str, dict[str, str] | None] = request.__dict__.setdefault("_vigil_authorize_query", {})
    if "query" in memo:
        return memo["query"]
    found = memo["query"] = _find(request)
    return found


def _find(request: HttpRequest) -> dict[str, str] | None:
    path = _authorize_path()
    if request.path == path:
        return {key: request.GET.get(key, "") for key in request.GET}
    nxt = request.GET.get("next") or (request.POST.get("next") if request.method == "POST" else None) or ""
    if not nxt or len(nxt) > MAX_NEXT or not nxt.startswith("/") or nxt.startswith("//"):
        return None
    try:
        parts = urlsplit(nxt)
    except ValueError:
        return None
    if parts.path != path:
        return None
    return {k: v[0] for k, v in parse_qs(parts.query).items() if v}
