"""System checks for insecure combinations (stable ids ``vigil.E00x`` / ``vigil.W00x``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_issuer(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    issuer: str = getattr(settings, "IDP_ISSUER", "")
    problems: list[Error | Warning] = []
    dev = settings.DEBUG or getattr(settings, "TESTING", False)
    if not issuer.startswith("https://") and not dev:
        problems.append(
            Error("IDP_ISSUER must be an https URL.", hint="Set IDP_ISSUER=https://...", id="vigil.E001")
        )
    if issuer.startswith("http://") and dev:
        host = issuer.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        if host not in {"localhost", "127.0.0.1", "[::1]"}:
            problems.append(
                Error("An http issuer is only allowed on localhost in development.", id="vigil.E002")
            )
    if settings.IDP_KEY_ENCRYPTION_SECRET.startswith("dev-insecure") and not dev:
        problems.append(Error("IDP_KEY_ENCRYPTION_SECRET is the development default.", id="vigil.E003"))
    return problems


@register(Tags.caches, deploy=True)
def check_shared_cache(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    backend = settings.CACHES["default"]["BACKEND"]
    if backend.endswith(("LocMemCache", "DummyCache")):
        return [
            Warning(
                "The default cache is not shared between processes: DPoP and client-assertion replay "
                "caches, single-use attestation challenges, login throttles and the configuration "
                "generation (which tells every process that a client, key or policy changed) would be "
                "per process.",
                hint="Set REDIS_URL.",
                id="vigil.W001",
            )
        ]
    return []
