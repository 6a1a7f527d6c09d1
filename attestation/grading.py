"""Graded trust (issue 17): which attested facts the Android verifiers refuse outright.

The verifiers always establish that the evidence is **authentic and consistent** — chain,
pinned root, validity, revocation, challenge, package name, signing-certificate digests,
signatures, counters, request hash / nonce, freshness, testing responses in production,
malformed input — whatever any policy says. What the **facts** they report earn (the key's
security level, verified boot state, bootloader lock, Play Integrity device recognition,
app recognition, licensing) is the client's device-health policy's choice.

A fact whose outcome is *deny* is refused by the verifier at the very step that refused it
before graded trust: the same ``invalid_client_attestation`` reason, in the same order, and
nothing is stored. A fact with any other outcome (allow, reduce, step-up) passes the
verifier; the device is stored with its facts and the device-health token policy applies the
outcome when it issues.

The attestation layer only knows the strict defaults (``strict_refusals``: today's
behaviour from ``RegisteredApp.allow_software_keys`` / ``min_integrity_level``); the
per-client choice plugs in from ``device_health`` (``register_refusals``, at
``AppConfig.ready()``), as the token policies plug into ``core.policy``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import RegisteredApp


class GradedFact(StrEnum):
    """The facts a verifier used to refuse by itself; each now has a per-client outcome.
    The values are the ``device_health`` conditions that test them."""

    SOFTWARE_KEY = "software_key"  # security_level_insufficient
    BOOT_NOT_VERIFIED = "boot_not_verified"  # boot_state_unverified
    BOOTLOADER_UNLOCKED = "bootloader_unlocked"  # bootloader_unlocked
    INTEGRITY_BELOW = "integrity_below"  # integrity_verdict_insufficient
    APP_NOT_RECOGNIZED = "app_not_recognized"  # app_not_recognized
    APP_UNLICENSED = "app_unlicensed"  # unlicensed


@dataclass(frozen=True)
class Refusals:
    """What the verifiers refuse for one app. The defaults are the strict ones (every fact
    refused, device recognition below ``device``)."""

    software_key: bool = True
    unverified_boot: bool = True
    unlocked_bootloader: bool = True
    min_integrity: str | None = "device"  # None: no level is refused by the verifier
    unrecognized_app: bool = True
    unlicensed: bool = True


def strict_refusals(app: RegisteredApp) -> Refusals:
    """Today's verifier behaviour for ``app``: everything refused, software keys only when the
    app does not allow them, device recognition below the app's ``min_integrity_level``."""
    return Refusals(software_key=not app.allow_software_keys, min_integrity=app.min_integrity_level)


RefusalProvider = Callable[["RegisteredApp"], Refusals]
_provider: list[RefusalProvider] = []


def register_refusals(provider: RefusalProvider) -> None:
    """Install the per-client choice (one provider; a second registration replaces it)."""
    _provider[:] = [provider]


def refusals_for(app: RegisteredApp) -> Refusals:
    """What the verifiers refuse for ``app``: the registered provider's answer, else the strict defaults."""
    return _provider[0](app) if _provider else strict_refusals(app)
