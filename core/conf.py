"""Reading one app's settings by prefix (``IDP_``, ``ACCOUNTS_``, ``ATTESTATION_``, ``SESSIONS_``).

Values come from Django settings, or from environment variables of the same name (copied
into settings as strings by ``vigil/settings.py``), so every reader coerces. Nothing is
cached: ``override_settings`` and the ``settings`` fixture take effect at once.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings

from .rates import Rate, parse

TRUE_WORDS = {"1", "true", "yes", "on"}


class SettingError(ValueError):
    """A setting that cannot be read; its message starts with the setting's full name
    (``IDP_PAR_RATE: ...``), which a system check shows as it is."""


def unreadable(*reads: Callable[[], object]) -> list[SettingError]:
    """The errors of the ``reads`` (settings properties, read as a callable) that cannot be
    read, in order: what a system check reports."""
    errors: list[SettingError] = []
    for read in reads:
        try:
            read()
        except SettingError as error:
            errors.append(error)
    return errors


class SettingsReader:
    def __init__(self, prefix: str):
        self.prefix = prefix

    def get(self, name: str, default: Any) -> Any:
        return getattr(settings, f"{self.prefix}{name}", default)

    def rate(self, name: str, default: str) -> Rate:
        """A request rate in DRF's syntax (``core.rates.parse``); ``SettingError`` naming the
        setting when it cannot be read (system checks ``vigil.E040``, ``attestation.E004``)."""
        try:
            return parse(self.get(name, default))
        except ValueError as error:
            raise SettingError(f"{self.prefix}{name}: {error}") from None

    def int(self, name: str, default: int) -> int:
        return int(self.get(name, default))

    def bool(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if isinstance(value, str):
            return value.strip().lower() in TRUE_WORDS
        return bool(value)

    def list(self, name: str, default: list[Any], *, commas_only: builtins.bool = False) -> list[Any]:
        """A list, or from the environment a JSON array or a comma- (and, unless
        ``commas_only`` for values such as paths, space-) separated string."""
        value = self.get(name, default)
        if not isinstance(value, str):
            return list(value)
        text = value.strip()
        if text.startswith("["):
            return list(json.loads(text))
        parts = text.split(",") if commas_only else text.replace(",", " ").split()
        return [part.strip() for part in parts if part.strip()]
