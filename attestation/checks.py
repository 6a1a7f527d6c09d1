"""System checks of the attestation app (stable ids ``attestation.E00x``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register

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
