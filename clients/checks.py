"""System checks of the tenant theme (stable ids ``clients.E00x``): a logo that cannot be
served, or colours that would make the pages unreadable (WCAG 2.2 §1.4.3, 4.5:1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.checks import Error, register

from core.app_settings import app_settings

from .branding import HEX_COLOR, TENANT_LOGO_MAX_BYTES
from .logo import LogoError, read_logo

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
