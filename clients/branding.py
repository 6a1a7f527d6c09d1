"""What the pages show about who is asking: the tenant's theme and the client's brand.

The tenant theme (name, logo, colours) comes from ``IDP_THEME_*`` settings
(``core.app_settings``); a client's brand (display name, logo, privacy policy and terms
links) from its row. :func:`context` is a template context processor: a page that serves an
authorization request (the authorize endpoint itself, or a sign-in page whose ``next``
points at it) shows "Sign in to <App>" with that app's logo. Only an active registered
client is shown, and everything is escaped by the templates like any other text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from core.app_settings import app_settings
from core.authorize_request import authorize_query

from .logo import Logo, read_logo
from .models import Client

TENANT_LOGO_MAX_BYTES = 2 * 1024 * 1024
HEX_COLOR = re.compile(r"^#[0-9a-f]{6}$")
DEFAULT_ACCENT, DEFAULT_BACKGROUND = "#1d4ed8", "#ffffff"


@dataclass(frozen=True)
class Theme:
    name: str
    logo_url: str
    accent: str
    background: str


@dataclass(frozen=True)
class AppBrand:
    client_id: str
    name: str
    logo_url: str
    privacy_policy_url: str
    terms_url: str


def theme() -> Theme:
    logo_url = reverse("branding-tenant-logo") if app_settings.THEME_LOGO else ""
    if logo_url and (logo := tenant_logo()) is not None:
        logo_url += f"?v={logo.sha256[:16]}"
    return Theme(app_settings.THEME_NAME, logo_url, _color(app_settings.THEME_ACCENT_COLOR, DEFAULT_ACCENT),
                 _color(app_settings.THEME_BACKGROUND_COLOR, DEFAULT_BACKGROUND))


def _color(value: str, default: str) -> str:
    """Only a checked ``#rrggbb`` reaches the page's style (``clients.E002`` reports others)."""
    return value if HEX_COLOR.match(value) else default


def tenant_logo() -> Logo | None:
    """The configured tenant logo, re-encoded (cached per path and modification time)."""
    path = Path(app_settings.THEME_LOGO)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    return _tenant_logo(str(path), stamp)


@lru_cache(maxsize=2)
def _tenant_logo(path: str, stamp: int) -> Logo | None:
    try:
        return read_logo(Path(path).read_bytes(), max_bytes=TENANT_LOGO_MAX_BYTES)
    except (OSError, ValueError):
        return None


def app_brand(client_id: str) -> AppBrand | None:
    """The brand of the active client ``client_id``: one query, never the logo's bytes."""
    if not client_id or len(client_id) > 100:
        return None
    row = (
        Client.objects.active().filter(client_id=client_id)
        .values("client_id", "name", "display_name", "privacy_policy_url", "terms_url", "logo__sha256").first()
    )
    if row is None:
        return None
    logo_url = ""
    if row["logo__sha256"]:
        logo_url = reverse("branding-client-logo", args=[row["client_id"]]) + f"?v={row['logo__sha256'][:16]}"
    return AppBrand(row["client_id"], row["display_name"] or row["name"], logo_url,
                    row["privacy_policy_url"], row["terms_url"])


def app_for_request(request: HttpRequest) -> AppBrand | None:
    """The app an authorization request served by this page comes from, if any."""
    query = authorize_query(request)
    return app_brand(query.get("client_id", "")) if query is not None else None


def context(request: HttpRequest) -> dict[str, Any]:
    """Template context processor: ``theme`` and ``client_brand`` (or None)."""
    return {"theme": theme(), "client_brand": app_for_request(request)}
