"""Template helpers of the account pages: plain words for what the account page shows."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext

from core.locale import time_zone_cookie_name

from .. import plain
from ..app_settings import app_settings

register = template.Library()


@register.simple_tag
def passkey_origin() -> str:
    """The web origin passkeys work on (WebAuthn L3 §5.1.2: the RP ID must match the host),
    named in the message shown when the page was opened elsewhere."""
    web = [o for o in app_settings.WEBAUTHN_ALLOWED_ORIGINS if o.startswith(("https://", "http://"))]
    return web[0] if web else ""


@register.simple_tag
def time_zone_cookie() -> str:
    """The name pages.js writes the browser's time zone under (``__Host-vigil_tz`` under an
    https issuer): given to the script, never written into it."""
    return time_zone_cookie_name()


@register.filter
def strength(acr: str) -> str:
    """``urn:vigil:acr:mfa`` → "Strong: two steps"."""
    return plain.strength(acr)


@register.filter
def methods(amr: list[str]) -> str:
    return ", ".join(plain.methods(list(amr or [])))


@register.filter
def software(user_agent: str) -> str:
    return plain.describe_user_agent(user_agent)


@register.filter
def place(ip: str | None) -> str:
    return plain.place(ip)


@register.simple_tag
def when(value: datetime | None, empty: str = "") -> str:
    """A ``<time>`` in the page's time zone (named), which pages.js redraws in the browser's."""
    if value is None:
        return empty or gettext("never")
    local = timezone.localtime(value)
    text = f"{date_format(local, 'DATETIME_FORMAT')} ({timezone.get_current_timezone_name()})"
    return format_html('<time datetime="{}" data-local>{}</time>', local.isoformat(), text)
