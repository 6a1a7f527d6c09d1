"""Settings of the accounts app, read lazily from ``ACCOUNTS_*`` Django settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def _get(name: str, default: Any) -> Any:
    return getattr(settings, f"ACCOUNTS_{name}", default)


class AppSettings:
    @property
    def LOGIN_FAILURES_PER_ACCOUNT(self) -> int:
        """Failed logins (password or second factor) per account in the window before refusing. Default 5."""
        return int(_get("LOGIN_FAILURES_PER_ACCOUNT", 5))

    @property
    def LOGIN_FAILURES_PER_IP(self) -> int:
        """Failed logins from one IP address in the window before refusing. Default 20."""
        return int(_get("LOGIN_FAILURES_PER_IP", 20))

    @property
    def LOGIN_FAILURE_WINDOW(self) -> int:
        """Seconds over which failures are counted (and the lock-out lasts). Default 900."""
        return int(_get("LOGIN_FAILURE_WINDOW", 900))


app_settings = AppSettings()
