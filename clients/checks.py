"""System checks of the tenant theme (stable ids ``clients.E00x``): a logo that cannot be
served, or colours that would make the pages unreadable (WCAG 2.2 §1.4.3, 4.5:1); and of the
registered clients: audiences stored before ``clients.audiences`` refused them, or written
behind it (raw SQL, a data migration), ``clients.E003``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError

from core.app_settings import app_settings

from . import audiences
from .branding import HEX_COLOR, TENANT_LOGO_MAX_BYTES
from .logo import LogoError, read_logo
from .models import Client

TEXT_COLOR = "#1d2430"  # the pages' body text (templates/base.html)
MIN_CONTRAST = 4.5


def _luminance(color: str) -> float:
    """Relative luminance (WCAG 2.2, "relative luminance" definition)."""
    channels = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@register()
def check_theme_logo(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    path = app_settings.THEME_LOGO
    if not path:
        return []
    try:
        read_logo(Path(path).read_bytes(), max_bytes=TENANT_LOGO_MAX_BYTES)
    except OSError as exc:
        return [Error(f"IDP_THEME_LOGO cannot be read: {exc}", id="clients.E001")]
    except LogoError as exc:
        return [Error(f"IDP_THEME_LOGO: {exc}", hint="Use a PNG, JPEG or WebP file up to 2 MB.", id="clients.E001")]
    return []


@register()
def check_theme_colors(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    accent, background = app_settings.THEME_ACCENT_COLOR, app_settings.THEME_BACKGROUND_COLOR
    for name, value in (("IDP_THEME_ACCENT_COLOR", accent), ("IDP_THEME_BACKGROUND_COLOR", background)):
        if not HEX_COLOR.match(value):
            return [Error(f"{name} must be a colour written #rrggbb, not {value!r}.", id="clients.E002")]
    if contrast(accent, "#ffffff") < MIN_CONTRAST:
        return [Error("White button text on IDP_THEME_ACCENT_COLOR is below 4.5:1 contrast.",
                      hint="Choose a darker accent colour.", id="clients.E002")]
    if contrast(TEXT_COLOR, background) < MIN_CONTRAST or contrast(accent, background) < 3:
        return [Error("Text on IDP_THEME_BACKGROUND_COLOR is below the contrast WCAG 2.2 asks for.",
                      hint="Choose a lighter background colour.", id="clients.E002")]
    return []


@register(Tags.security, Tags.database)
def check_client_audiences(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Warning]:
    """``clients.audiences`` over every stored client. A database check: it reads the clients
    when the command names a database (``migrate`` does; ``check --database default``), never
    before the table exists. A warning, not an error: such a value already grants nothing
    (``audiences.py``), so an upgrade goes on while the operator removes it."""
    found = []
    for alias in databases or ():
        try:
            rows = list(Client.objects.using(alias).order_by("pk").values_list(
                "client_id", "served_resources", "token_exchange_audiences"))
        except DatabaseError:  # no table (or column) yet: migrate creates it; nothing is stored in it
            continue
        found += [Warning(f"Client {client_id!r}, {problem.field}: {problem.message} It grants nothing.",
                        hint="Remove it from the client in the admin, which refuses it too, or in manage.py "
                        "shell (docs/authorization.md, \"What a client's audiences may name\").",
                        id="clients.W003")
                  for client_id, served, exchange in rows
                  for problem in audiences.problems(client_id, served, exchange)]
    return found
