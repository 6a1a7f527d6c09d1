"""What a user sees of device health on their account page: which of their devices is
restricted, why, and what to do about it (issue 7 §5). No facts beyond what explains it."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from .models import DeviceHealth, HealthOutcome

OUTCOME_TEXT = {
    HealthOutcome.REDUCE: _("Limited access: apps on this device get fewer permissions for a short time."),
    HealthOutcome.STEP_UP: _("You must sign in again on this device."),
    HealthOutcome.DENY: _("Blocked: apps on this device cannot sign in."),
}
DEFAULT_ADVICE = {
    HealthOutcome.REDUCE: _(
        "Update the device and turn off screen recording; full access returns at the app's next refresh."
    ),
    HealthOutcome.STEP_UP: _("Open the app and sign in again."),
    HealthOutcome.DENY: _("Use a device with an unmodified, up-to-date system and the app from the official store."),
}
PLATFORM_NAMES = {"ios": _("iPhone or iPad"), "android": _("Android device")}


def restrictions_for(user: Any) -> list[dict[str, Any]]:
    """One entry per restricted device the user signed in on:
    ``{device, client, outcome, summary, why: [str], what_to_do: [str], since}``."""
    if getattr(user, "pk", None) is None:
        return []
    healths = (
        DeviceHealth.objects.filter(device__sessions__user=user).exclude(outcome=HealthOutcome.ALLOW)
        .select_related("device__app__client").distinct().order_by("-outcome_changed_at")
    )
    return [_entry(h) for h in healths]


def _entry(health: DeviceHealth) -> dict[str, Any]:
    outcome = HealthOutcome(health.outcome)
    why = [str(f.get("detail", "")).capitalize() for f in health.findings if f.get("outcome") != HealthOutcome.ALLOW]
    advice = [str(f["message"]) for f in health.findings if f.get("message")]
    version = f" ({health.os_version})" if health.os_version and health.os_version != "unknown" else ""
    return {
        "device": f"{PLATFORM_NAMES.get(health.platform, health.platform)}{version}",
        "client": health.device.app.client.shown_name,
        "outcome": outcome.value,
        "summary": str(OUTCOME_TEXT.get(outcome, "")),
        "why": why,
        "what_to_do": list(dict.fromkeys(advice)) or [str(DEFAULT_ADVICE.get(outcome, ""))],
        "since": health.outcome_changed_at or health.evaluated_at,
    }
