"""The language and time zone a page is rendered in.

Language (OIDC Core §3.1.2.1 ``ui_locales``): the person's own choice on the page (Django's
``set_language`` cookie) first, then the ``ui_locales`` of the authorization request the
page serves (``core.authorize_request``), then the browser's ``Accept-Language``, then
``LANGUAGE_CODE``. Time zone: the IANA zone the browser reported (the cookie
``time_zone_cookie_name()``, ``__Host-vigil_tz`` under an https issuer, written by
``accounts/static/accounts/pages.js``) when it is a zone we know, else ``TIME_ZONE``; the
pages name the zone next to every time.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.middleware.locale import LocaleMiddleware
from django.utils import timezone, translation

from .authorize_request import authorize_query


def time_zone_cookie_name() -> str:
    """``VIGIL_TIME_ZONE_COOKIE_NAME``: the page passes it to its script, which writes the cookie."""
    return str(settings.VIGIL_TIME_ZONE_COOKIE_NAME)


def ui_locales(request: HttpRequest) -> Iterator[str]:
    """Supported languages from ``ui_locales`` (space-separated BCP 47 tags), in order."""
    query = authorize_query(request)
    for tag in ((query or {}).get("ui_locales") or "").split()[:10]:
        try:
            yield translation.get_supported_language_variant(tag.lower()[:35])
        except LookupError:
            continue


def language_for(request: HttpRequest, *, from_the_request: bool = True) -> str:
    """The page's language: the switcher's cookie, then the authorization request's
    ``ui_locales``, then ``Accept-Language``. ``from_the_request=False`` skips ``ui_locales``
    (for a request refused unread: its parameters are what could not be read)."""
    chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    if chosen and translation.check_for_language(chosen):
        try:
            return translation.get_supported_language_variant(chosen)
        except LookupError:
            pass
    for language in ui_locales(request) if from_the_request else ():
        return language
    return translation.get_language_from_request(request)


def zone_for(request: HttpRequest) -> zoneinfo.ZoneInfo | None:
    name = request.COOKIES.get(time_zone_cookie_name(), "")
    if not name or len(name) > 64 or name not in _known_zones():
        return None
    return zoneinfo.ZoneInfo(name)


_ZONES: set[str] = set()


def _known_zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(zoneinfo.available_timezones())
    return _ZONES


class PageLocaleMiddleware(LocaleMiddleware):
    """Django's ``LocaleMiddleware`` (``Content-Language``, ``Vary: Accept-Language``) with the
    order above, and the time zone."""

    def process_request(self, request: HttpRequest) -> None:
        language = language_for(request)
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        zone = zone_for(request)
        if zone is not None:
            timezone.activate(zone)
        else:
            timezone.deactivate()

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        # Only pages depend on the language: JSON (the token endpoint, JWKS, discovery) keeps
        # its caching headers without ``Vary: Accept-Language``.
        if response.get("Content-Type", "").startswith("text/html"):
            response = super().process_response(request, response)
        # The page is rendered: the next thing this thread does gets the defaults again.
        timezone.deactivate()
        translation.deactivate()
        return response
