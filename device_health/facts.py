"""Health facts of one device, each with its source and how far it can be trusted.

Sources (``docs/device-health.md`` has the full table):

* ``android_key_attestation``: the KeyDescription of the attested key's leaf certificate,
  written by KeyMint in the TEE/StrongBox ("Key and ID attestation", AuthorizationList
  ``osVersion`` (MMmmss), ``osPatchLevel`` (YYYYMM), ``vendorPatchLevel`` /
  ``bootPatchLevel`` (YYYYMMDD), ``rootOfTrust.verifiedBootState`` / ``deviceLocked``).
* ``play_integrity``: Google's verdict ("Integrity verdicts": ``deviceRecognitionVerdict``,
  ``deviceAttributes.sdkVersion``, ``recentDeviceActivity.deviceActivityLevel``,
  ``environmentDetails.playProtectVerdict`` and ``appAccessRiskVerdict.appsDetected``,
  ``appIntegrity.appRecognitionVerdict``).
* ``app_attest``: a verified App Attest attestation/assertion: a genuine instance of the
  registered app on a genuine Apple device ("Validating apps that connect to your server").
* ``app_attest_receipt``: the fraud risk metric of the refreshed receipt ("Assessing fraud
  risk", receipt field 17).
* ``apple_devicecheck``: the two per-device bits Apple keeps for the team across reinstalls
  ("Accessing and modifying per-device data"), read at the enrollment
  (``devicecheck_bit0``, ``devicecheck_bit1``, ``devicecheck_last_update`` YYYY-MM,
  ``devicecheck_status`` ok | unavailable).
* ``self_reported``: signals the app reports (OS version, screen captured / mirrored,
  debugger attached). Nobody on the network can forge them (they are inside the attested
  binding) but the app itself could lie: they may only ever restrict a device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KEY_ATTESTATION = "android_key_attestation"
PLAY_INTEGRITY = "play_integrity"
APP_ATTEST = "app_attest"
APPLE_RECEIPT = "app_attest_receipt"
APPLE_DEVICECHECK = "apple_devicecheck"
SELF_REPORTED = "self_reported"
UNATTESTED = "unattested_enrollment"  # the fallback: only the DPoP key is known (docs/unattested-devices.md)

TRUST_HARDWARE = "hardware_attested"
TRUST_SOFTWARE = "software_attested"
TRUST_GOOGLE = "google_verdict"
TRUST_APPLE = "apple_service"
TRUST_SELF = "self_reported"
TRUST_NONE = "none"

SIGNALS = {  # accepted self-reported signals -> expected JSON type
    "os_version": str,
    "screen_captured": bool,
    "screen_mirrored": bool,
    "debugger_attached": bool,
}
RECOGNITION = (
    ("MEETS_STRONG_INTEGRITY", "strong"),
    ("MEETS_DEVICE_INTEGRITY", "device"),
    ("MEETS_BASIC_INTEGRITY", "basic"),
    ("MEETS_VIRTUAL_INTEGRITY", "virtual"),
)


@dataclass(frozen=True)
class Fact:
    value: Any
    source: str
    trust: str


class HealthFacts(dict[str, Fact]):
    """``name -> Fact``; ``value(name)`` is None when the fact is unknown."""

    def value(self, name: str) -> Any:
        fact = self.get(name)
        return None if fact is None else fact.value

    def as_json(self) -> dict[str, dict[str, Any]]:
        """As stored (``dataclasses.asdict`` without its deep copies: values are JSON scalars
        or lists of strings; every refresh builds this)."""
        return {
            name: {"value": list(fact.value) if isinstance(fact.value, list) else fact.value,
                   "source": fact.source, "trust": fact.trust}
            for name, fact in sorted(self.items())
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HealthFacts:
        return cls({k: Fact(**v) for k, v in (data or {}).items() if isinstance(v, dict)})


def android_os_version(value: Any) -> str | None:
    """KeyMint ``osVersion`` MMmmss (e.g. 150000 -> ``15.0.0``); 0 means unknown."""
    if not isinstance(value, int) or value <= 0:
        return None
    return f"{value // 10000}.{value // 100 % 100}.{value % 100}"


def patch_level(value: Any) -> str | None:
    """``YYYYMM`` or ``YYYYMMDD`` as ``YYYY-MM`` / ``YYYY-MM-DD``."""
    if not isinstance(value, int) or value <= 0:
        return None
    text = str(value)
    if len(text) == 6:
        return f"{text[:4]}-{text[4:]}"
    if len(text) == 8:
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return None


def recognition_level(verdicts: Any) -> str:
    """The strongest label of ``deviceRecognitionVerdict``; ``none`` when empty or missing."""
    labels = set(verdicts or [])
    return next((level for label, level in RECOGNITION if label in labels), "none")


def _key_attestation(facts: HealthFacts, ka: dict[str, Any], security_level: str) -> None:
    trust = TRUST_SOFTWARE if security_level == "software" else TRUST_HARDWARE
    rot = ka.get("root_of_trust") or {}

    def put(name: str, value: Any) -> None:
        if value is not None:
            facts[name] = Fact(value, KEY_ATTESTATION, trust)

    put("os_version", android_os_version(ka.get("os_version")))
    put("os_patch_level", patch_level(ka.get("os_patch_level")))
    put("vendor_patch_level", patch_level(ka.get("vendor_patch_level")))
    put("boot_patch_level", patch_level(ka.get("boot_patch_level")))
    put("verified_boot_state", rot.get("verified_boot_state") if rot else "Missing")
    put("bootloader_locked", bool(rot.get("device_locked")) if rot else False)
    put("key_security_level", security_level or None)


def _play_integrity(facts: HealthFacts, pi: dict[str, Any]) -> None:
    def put(name: str, value: Any) -> None:
        if value is not None:
            facts[name] = Fact(value, PLAY_INTEGRITY, TRUST_GOOGLE)

    put("device_recognition", recognition_level(pi.get("device_recognition_verdict")))
    put("sdk_version", pi.get("sdk_version"))
    put("recent_device_activity", pi.get("recent_device_activity"))
    put("play_protect_verdict", pi.get("play_protect_verdict"))
    put("apps_detected", list(pi.get("apps_detected") or []))
    put("genuine_app", pi.get("app_recognition_verdict") == "PLAY_RECOGNIZED")
    if "app_licensing_verdict" in pi:  # kept by every verifier since issue 4; absent: unknown
        put("app_licensed", pi["app_licensing_verdict"] == "LICENSED")
    put("integrity_checked_at", pi.get("checked_at") or pi.get("timestamp"))


def _devicecheck(facts: HealthFacts, stored: Any) -> None:
    """The bits read at enrollment; while Apple could not answer (fail open) they stay unknown."""
    if not isinstance(stored, dict):
        return
    facts["devicecheck_status"] = Fact(str(stored.get("status", "unknown")), APPLE_DEVICECHECK, TRUST_APPLE)
    if stored.get("status") != "ok":
        return
    facts["devicecheck_bit0"] = Fact(stored.get("bit0") is True, APPLE_DEVICECHECK, TRUST_APPLE)
    facts["devicecheck_bit1"] = Fact(stored.get("bit1") is True, APPLE_DEVICECHECK, TRUST_APPLE)
    if isinstance(stored.get("last_update_time"), str):
        facts["devicecheck_last_update"] = Fact(stored["last_update_time"], APPLE_DEVICECHECK, TRUST_APPLE)


def verified_signals(signals: dict[str, Any] | None) -> dict[str, Any]:
    """Keep the known signals of the right JSON type; anything else is ignored. A string is
    kept only as short printable text: JSON may carry a NUL (which PostgreSQL's text and jsonb
    refuse) or a lone surrogate (which UTF-8 cannot encode), and neither is a version."""
    kept: dict[str, Any] = {}
    for name, kind in SIGNALS.items():
        value = (signals or {}).get(name)
        if isinstance(value, kind) and not (isinstance(value, str) and not _short_text(value)):
            kept[name] = value
    return kept


def _short_text(value: str) -> bool:
    return len(value) <= 40 and value.isprintable()  # control characters and surrogates are not


def collect(device: Any, signals: dict[str, Any] | None, receipt_risk_metric: int | None = None) -> HealthFacts:
    """Every fact we hold on ``device`` (its stored verdicts) plus the verified ``signals``."""
    facts = HealthFacts()
    verdict = device.verdict or {}
    if not getattr(device, "attested", True):
        # Nothing about an unattested device is established, not even that the app is genuine:
        # the only fact is that it did not attest. Self-reported signals are not covered by
        # any attested binding: none is taken (docs/unattested-devices.md).
        facts["attested"] = Fact(False, UNATTESTED, TRUST_NONE)
        reason = (verdict.get("unattested") or {}).get("reason")
        if reason:
            facts["unattested_reason"] = Fact(reason, UNATTESTED, TRUST_SELF)
        _devicecheck(facts, verdict.get("devicecheck"))  # an iPhone's bits, where its app checks them
        return facts
    if device.platform == "android":
        if verdict.get("key_attestation"):  # absent: unknown, not "missing root of trust"
            _key_attestation(facts, verdict["key_attestation"], device.security_level)
        if verdict.get("play_integrity"):
            _play_integrity(facts, verdict["play_integrity"])
    else:
        facts["genuine_app"] = Fact(True, APP_ATTEST, TRUST_HARDWARE)
        facts["app_attest_environment"] = Fact(verdict.get("environment", "unknown"), APP_ATTEST, TRUST_HARDWARE)
        if receipt_risk_metric is not None:
            facts["receipt_risk_metric"] = Fact(receipt_risk_metric, APPLE_RECEIPT, TRUST_APPLE)
        _devicecheck(facts, verdict.get("devicecheck"))
    for name, value in verified_signals(signals).items():
        key = name if name not in facts else f"reported_{name}"
        facts[key] = Fact(value, SELF_REPORTED, TRUST_SELF)
    return facts


def display_os_version(platform: str, facts: HealthFacts) -> str:
    """The OS version the fleet view groups by (attested first, self-reported otherwise)."""
    version = facts.value("os_version") or facts.value("reported_os_version")
    if not version and facts.value("sdk_version"):
        version = f"SDK {facts.value('sdk_version')}"
    return str(version or "unknown")[:40]
