"""System checks for the accounts settings (stable ids ``accounts.E00x`` / ``accounts.W00x``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .admin_site import single_factor_requested
from .app_settings import app_settings

LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


@register(Tags.security)
def check_webauthn(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    problems: list[Error | Warning] = []
    try:
        rp_id = app_settings.WEBAUTHN_RP_ID
        origins = app_settings.WEBAUTHN_ALLOWED_ORIGINS
        asset_links = app_settings.ASSET_LINKS
        _ = app_settings.APPLE_APP_IDS  # read only to report a parse error
    except (ValueError, TypeError) as exc:
        return [Error(f"An ACCOUNTS_* setting cannot be parsed: {exc}", id="accounts.E001")]
    issuer_host = urlsplit(str(getattr(settings, "IDP_ISSUER", ""))).hostname or ""
    if issuer_host and issuer_host != rp_id and not issuer_host.endswith("." + rp_id):
        problems.append(Error(
            f"ACCOUNTS_WEBAUTHN_RP_ID {rp_id!r} is not the issuer host {issuer_host!r} or a parent domain of it;"
            " browsers refuse such an RP ID (WebAuthn L3 §5.1.2).", id="accounts.E002"))
    for origin in origins:
        parts = urlsplit(origin)
        if origin.startswith("android:apk-key-hash:"):
            continue
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            problems.append(Error(f"Allowed WebAuthn origin {origin!r} is not an origin.", id="accounts.E003"))
        elif parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
            problems.append(Warning(f"Allowed WebAuthn origin {origin!r} is plain http.", id="accounts.W001"))
    for entry in asset_links:
        if "target" not in entry and not (entry.get("package_name") and entry.get("sha256_cert_fingerprints")):
            problems.append(Error(
                "Each ACCOUNTS_ASSET_LINKS entry needs package_name and sha256_cert_fingerprints.",
                id="accounts.E004"))
    return problems


REMOVED_THROTTLE_SETTINGS = ("ACCOUNTS_LOGIN_FAILURES_PER_ACCOUNT", "ACCOUNTS_LOGIN_FAILURES_PER_IP",
                             "ACCOUNTS_LOGIN_FAILURE_WINDOW")


@register(Tags.security)
def check_removed_throttle_settings(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """The lock-out settings replaced by progressive delays (docs/operations.md "Throttling")."""
    found = [name for name in REMOVED_THROTTLE_SETTINGS if hasattr(settings, name)]
    if not found:
        return []
    return [Warning(f"{', '.join(found)} no longer take effect: sign-in failures now cause progressive delays.",
                    hint="Use ACCOUNTS_LOGIN_FREE_FAILURES, ACCOUNTS_LOGIN_UNFAMILIAR_FREE_FAILURES, "
                         "ACCOUNTS_LOGIN_SOURCE_FREE_FAILURES and ACCOUNTS_LOGIN_MAX_DELAY_SECONDS.",
                    id="accounts.W002")]


@register(Tags.security)
def check_admin_second_factor(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """The admin without a second factor is a development-only shortcut (``accounts.admin_site``)."""
    if single_factor_requested() and not settings.DEBUG:
        return [Error(
            "VIGIL_ADMIN_ALLOW_SINGLE_FACTOR lets staff into the admin with a password alone.",
            hint="Unset VIGIL_ADMIN_ALLOW_SINGLE_FACTOR, or use it only with DJANGO_DEBUG=1.",
            id="accounts.E005")]
    return []
