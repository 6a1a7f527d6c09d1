"""System checks of the operations settings (stable ids, as ``vigil.E010``)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from core.client_address import parse_networks

from .app_settings import ops_settings

MIN_TOKEN_LENGTH = 16


def metrics_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    problems: list[checks.CheckMessage] = []
    _networks, invalid = parse_networks(tuple(ops_settings.METRICS_ALLOW))
    if invalid:
        problems.append(checks.Error(
            f"VIGIL_METRICS_ALLOW has entries that are not addresses or networks: {', '.join(invalid)}",
            hint="List addresses or CIDR networks, comma-separated (10.0.0.0/8,192.0.2.7).", id="ops.E001",
        ))
    token = ops_settings.METRICS_TOKEN
    if token and len(token) < MIN_TOKEN_LENGTH:
        problems.append(checks.Error(
            f"VIGIL_METRICS_TOKEN is shorter than {MIN_TOKEN_LENGTH} characters.",
            hint="Use a random value, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`.",
            id="ops.E002",
        ))
    return problems


def register() -> None:
    checks.register(metrics_settings, checks.Tags.security)
