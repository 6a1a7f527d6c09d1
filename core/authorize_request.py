"""The authorization request a page serves, for what the page shows (language, app brand).

The authorize endpoint's own pages (consent, account chooser, errors) carry the request in
their query; the sign-in pages carry it as ``next`` (a path on this origin pointing at the
authorize endpoint, or at the sign-in page whose own ``next`` does, as the second-factor
set-up pages do). Only *display* reads this: the authorize endpoint validates the
request itself whenever it acts on it.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

MAX_NEXT = 4000
MAX_DEPTH = 3


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
    for _depth in range(MAX_DEPTH):  # a page whose next is the sign-in page whose next is authorize
        query = _local_query(nxt)
        if query is None:
            return None
        if query[0] == path:
            return query[1]
        nxt = query[1].get("next", "")
    return None


def _local_query(url: str) -> tuple[str, dict[str, str]] | None:
    """(path, first value of each parameter) of a path on this origin, else None."""
    if not url or len(url) > MAX_NEXT or not url.startswith("/") or url.startswith("//"):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items() if v}
