"""System checks of the attestation app (stable ids ``attestation.E00x``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register

from core.conf import unreadable

from .app_settings import app_settings


@register(Tags.security, deploy=True)
def check_test_roots(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Test trust roots are a development-only shortcut: refuse them outside DEBUG/tests."""
    dev = settings.DEBUG or getattr(settings, "TESTING", False)
    if app_settings.ALLOW_TEST_ROOTS and not dev:
        return [
            Error(
                "ATTESTATION_ALLOW_TEST_ROOTS trusts the simulator's test PKI; anyone can forge attestations.",
                hint="Unset ATTESTATION_ALLOW_TEST_ROOTS, or use it only with DJANGO_DEBUG=1.",
                id="attestation.E001",
            )
        ]
    return []


@register(Tags.security)
def check_apple_roots(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every configured App Attest root must be a readable PEM file."""
    problems = []
    for path in app_settings.APPLE_ROOT_CERTS:
        file = Path(path)
        if not file.is_file() or b"BEGIN CERTIFICATE" not in file.read_bytes():
            problems.append(
                Error(f"App Attest root {path} is not a readable PEM certificate.",
                      hint="Fix ATTESTATION_APPLE_ROOT_CERTS (comma-separated PEM paths).", id="attestation.E002")
            )
    return problems


@register(Tags.security, deploy=True)
def check_devicecheck_hosts(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Apple's DeviceCheck API is reached over https only; a plain-http base URL (the local
    stand-in of ``make up``) is a development shortcut refused outside DEBUG/tests."""
    dev = settings.DEBUG or getattr(settings, "TESTING", False)
    urls = [app_settings.DEVICECHECK_BASE_URL, app_settings.DEVICECHECK_DEVELOPMENT_BASE_URL]
    if dev or all(url.startswith("https://") for url in urls):
        return []
    return [
        Error(
            "ATTESTATION_DEVICECHECK_BASE_URL / _DEVELOPMENT_BASE_URL must be https URLs (Apple's hosts).",
            hint="Unset them (Apple's hosts are the defaults), or use the local stand-in only with DJANGO_DEBUG=1.",
            id="attestation.E003",
        )
    ]


@register(Tags.security)
def check_challenge_rate(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """``attestation.E004``: a challenge rate that cannot be read would refuse every challenge
    (the same syntax as the OAuth endpoints' rates, ``core.conf.SettingsReader.rate``)."""
    return [Error(f"{error}.", hint="e.g. ATTESTATION_CHALLENGE_RATE=120/min", id="attestation.E004")
            for error in unreadable(lambda: app_settings.CHALLENGE_RATE)]
