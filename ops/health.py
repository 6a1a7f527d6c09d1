"""Readiness: can this instance answer token requests now? (docs/operations.md "Health checks").

Three checks, each a round trip at most, in this order: the database (``SELECT 1``), the
shared cache (one GET: Redis in production) and a usable signing key for every signing
algorithm (loaded and decrypted, from the process's copy once loaded; on a fresh database
the first keys are made, as by the first JWKS read, so a new installation becomes ready).
A failed check names the store and the error's type, never a message that could carry an
address or a password. The signing-key check needs the database, so it is skipped when the
database is down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from django.core.cache import cache
from django.db import connection

from core import keys, metrics
from core.outage import Dependency, dependency_of

logger = logging.getLogger(__name__)

OK = "ok"
PROBE_KEY = "vigil:readyz"


class Check(StrEnum):
    DATABASE = "database"
    CACHE = "cache"
    SIGNING_KEY = "signing_key"


@dataclass
class Readiness:
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(result == OK for result in self.checks.values())

    @property
    def reason(self) -> str:
        """The first failed check, as ``<check>: <result>`` (empty when ready)."""
        return next((f"{name}: {result}" for name, result in self.checks.items() if result != OK), "")

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"status": "ready" if self.ready else "not_ready", "checks": self.checks}
        if not self.ready:
            body["reason"] = self.reason
        return body


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _cache() -> None:
    cache.get(PROBE_KEY)


def _signing_keys() -> None:
    for alg in keys.signing_algs():
        keys.active_key(alg)


def _run(name: Check, check: Callable[[], None]) -> str:
    try:
        check()
    except Exception as exc:
        dependency = dependency_of(exc)
        if dependency is not None:
            metrics.dependency_error(dependency, "readyz")
        logger.warning("not ready: %s check failed (%s)", name, type(exc).__name__)
        return f"unavailable ({type(exc).__name__})"
    return OK


def readiness() -> Readiness:
    result = Readiness()
    result.checks[Check.DATABASE] = _run(Check.DATABASE, _database)
    result.checks[Check.CACHE] = _run(Check.CACHE, _cache)
    if result.checks[Check.DATABASE] == OK:
        result.checks[Check.SIGNING_KEY] = _run(Check.SIGNING_KEY, _signing_keys)
    else:
        result.checks[Check.SIGNING_KEY] = f"not checked ({Dependency.DATABASE} unavailable)"
    return result
