"""Middleware that only pages need, skipped for the OAuth endpoints (issue 19).

The token, introspection, revocation, PAR and device authorization endpoints are called by
apps and services, never by a browser with our cookies: they read no session, no signed-in
user, no second factor, no flash message and no page language. Django's session, auth, OTP
and message middleware and ``core.locale``'s still cost each such request about 0.35 ms of
CPU (measured per middleware on the refresh grant, docs/benchmarks.md; the language alone
0.22 ms), 5-8% of a refresh. Requests for views marked ``@api_endpoint`` pass through them
untouched; every other request, pages, admin and unmarked endpoints alike, gets them exactly
as before.

Only middleware without ``process_view``, ``process_exception`` or
``process_template_response`` hooks may be skipped this way (Django calls those outside
``__call__``, so skipping ``__call__`` would not skip them): ``PagesOnly`` refuses, when the
class is defined, one that has them. CSRF (``process_view``) therefore always runs; the
marked views are ``csrf_exempt`` in any case.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, get_urlconf, resolve
from django_otp.middleware import OTPMiddleware

from .locale import PageLocaleMiddleware

View = TypeVar("View", bound=Callable[..., Any])

_MARK = "vigil_api_endpoint"
OUTSIDE_CALL = ("process_view", "process_exception", "process_template_response")


def api_endpoint(view: View) -> View:
    """Mark a view as an API endpoint: page-only middleware passes its requests through."""
    setattr(view, _MARK, True)
    return view


def is_api_request(request: HttpRequest) -> bool:
    """Whether ``request`` is for a view marked ``@api_endpoint`` (resolved once per request, by
    the URL configuration Django will route it by: a middleware's ``request.urlconf``, if set)."""
    known: bool | None = request.__dict__.get(_MARK)
    if known is None:
        urlconf = getattr(request, "urlconf", None) or get_urlconf()
        known = request.__dict__[_MARK] = _marked(request.path_info, urlconf)
    return known


@lru_cache(maxsize=512)
def _marked(path: str, urlconf: str | None) -> bool:
    """Whether ``path`` resolves to a marked view (kept per path: a bounded table, emptied when
    the URL configuration changes)."""
    try:
        return bool(getattr(resolve(path, urlconf).func, _MARK, False))
    except Resolver404:
        return False


def _urls_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "ROOT_URLCONF":
        _marked.cache_clear()


setting_changed.connect(_urls_changed, dispatch_uid="core-pages-only-urls-changed")


class PagesOnly:
    """Mixin for a middleware class: its ``__call__`` is skipped for API endpoints."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hooks = [hook for hook in OUTSIDE_CALL if hasattr(cls, hook)]
        if hooks:
            raise ImproperlyConfigured(f"{cls.__name__} has {', '.join(hooks)}: it cannot be skipped for API endpoints")

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if is_api_request(request):
            return self.get_response(request)  # type: ignore[attr-defined]  # the middleware's own
        return super().__call__(request)  # type: ignore[misc]  # the middleware class it is mixed into


class PageSessionMiddleware(PagesOnly, SessionMiddleware):
    """Django's sessions, for pages."""


class PageLanguageMiddleware(PagesOnly, PageLocaleMiddleware):
    """The page's language and time zone (``core.locale``), for pages."""


class PageAuthenticationMiddleware(PagesOnly, AuthenticationMiddleware):
    """``request.user``, for pages."""


class PageOTPMiddleware(PagesOnly, OTPMiddleware):
    """django-otp's verified second factor on ``request.user``, for pages."""


class PageMessageMiddleware(PagesOnly, MessageMiddleware):
    """Flash messages, for pages."""
