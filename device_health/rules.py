"""Rules mapping health facts to an outcome, and the secure defaults.

A rule fires when its condition holds on the device's facts; an unknown fact never makes
a rule fire (the attestation verifiers already refuse what they cannot establish).

Graded facts (issue 17, ``attestation/grading.py``): the facts the Android verifiers used to
refuse by themselves (software key, boot state, bootloader, device and app recognition,
licensing) have a default rule each that keeps today's refusal (deny; the app's
``allow_software_keys`` and ``min_integrity_level`` are the defaults of the first and the
integrity level). These defaults apply even to a policy without the other defaults, unless the
client chose an outcome for that fact: any own rule on the condition replaces them. Of
the rules that fire, the strictest outcome wins (deny > step-up > reduce > allow); the
first rule with that outcome is the deciding rule. Several 'reduce' rules narrow
together: the scopes kept are the intersection, the lifetime the shortest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from attestation.app_settings import app_settings as attestation_settings
from attestation.grading import GradedFact
from attestation.models import Platform, RegisteredApp
from core import config_cache

from .facts import HealthFacts
from .models import SEVERITY, HealthCondition, HealthOutcome, HealthPolicy
from .settings import health_settings

INTEGRITY_RANK = {"none": 0, "virtual": 0, "basic": 1, "device": 2, "strong": 3}
ACTIVITY_RANK = {"LEVEL_1": 1, "LEVEL_2": 2, "LEVEL_3": 3, "LEVEL_4": 4}
DEFAULT_RISKY_APPS = "UNKNOWN_CAPTURING,UNKNOWN_CONTROLLING"
DEFAULT_PLAY_PROTECT = "HIGH_RISK"
UNATTESTED_RULE = "unattested-device"  # the fallback's default rule (docs/unattested-devices.md)
RULES_KEY = "health-rules"  # config cache: (RULES_KEY, client pk) -> the client's rules


@dataclass(frozen=True)
class RuleSpec:
    name: str
    condition: str
    outcome: str
    parameter: str = ""
    platform: str = ""
    scopes: str | None = None
    lifetime: int | None = None
    message: str = ""


@dataclass(frozen=True)
class Finding:
    rule: RuleSpec
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule.name, "condition": self.rule.condition, "outcome": self.rule.outcome,
                "detail": self.detail, "message": self.rule.message}


@dataclass
class Decision:
    outcome: str = HealthOutcome.ALLOW
    deciding: Finding | None = None
    findings: list[Finding] = field(default_factory=list)
    scopes: str | None = None
    lifetime: int | None = None


# ------------------------------------------------------------------ conditions
# Each returns a short detail when the condition holds, None otherwise.

def _months_behind(value: str, now: datetime) -> int:
    year, month = int(value[:4]), int(value[5:7])
    return (now.year * 12 + now.month) - (year * 12 + month)


def _whole_number(param: str) -> bool:
    """ASCII digits only, and not absurdly many: ``str.isdigit`` also accepts "²", and
    ``int()`` refuses both that and strings of thousands of digits."""
    text = param.strip()
    return text.isascii() and text.isdecimal() and len(text) <= 9


def _version_tuple(value: str) -> tuple[int, ...]:
    parts = []
    for part in str(value).split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdecimal() and ch.isascii())
        parts.append(int(digits or 0))
    return tuple(parts)


def _boot(facts: HealthFacts, param: str, now: datetime) -> str | None:
    state = facts.value("verified_boot_state")
    return f"verified boot state {state}" if state is not None and state != "Verified" else None


def _bootloader(facts: HealthFacts, param: str, now: datetime) -> str | None:
    return "bootloader unlocked" if facts.value("bootloader_locked") is False else None


def _integrity(facts: HealthFacts, param: str, now: datetime) -> str | None:
    level = facts.value("device_recognition")
    wanted = param or "basic"
    if level is None or INTEGRITY_RANK.get(level, 0) >= INTEGRITY_RANK.get(wanted, 1):
        return None
    return f"device recognition {level}, below {wanted}"


def _genuine(facts: HealthFacts, param: str, now: datetime) -> str | None:
    return "app not recognised" if facts.value("genuine_app") is False else None


def _patch(facts: HealthFacts, param: str, now: datetime) -> str | None:
    level = facts.value("os_patch_level")
    months = int(param) if _whole_number(param) else health_settings.MAX_PATCH_AGE_MONTHS
    if not level:
        return None
    behind = _months_behind(level, now)
    return f"OS patch level {level} is {behind} months old (limit {months})" if behind > months else None


def _os_version(facts: HealthFacts, param: str, now: datetime) -> str | None:
    version = facts.value("os_version") or facts.value("reported_os_version")
    if not version or not param:
        return None
    return f"OS version {version} below {param}" if _version_tuple(version) < _version_tuple(param) else None


def _capture(facts: HealthFacts, param: str, now: datetime) -> str | None:
    on = [name for name in ("screen_captured", "screen_mirrored") if facts.value(name) is True]
    return " and ".join(n.replace("_", " ") for n in on) if on else None


def _debugger(facts: HealthFacts, param: str, now: datetime) -> str | None:
    return "debugger attached" if facts.value("debugger_attached") is True else None


def _risky_apps(facts: HealthFacts, param: str, now: datetime) -> str | None:
    risky = {p.strip() for p in (param or DEFAULT_RISKY_APPS).split(",") if p.strip()}
    found = sorted(risky & set(facts.value("apps_detected") or []))
    return f"apps detected: {', '.join(found)}" if found else None


def _play_protect(facts: HealthFacts, param: str, now: datetime) -> str | None:
    risky = {p.strip() for p in (param or DEFAULT_PLAY_PROTECT).split(",") if p.strip()}
    verdict = facts.value("play_protect_verdict")
    return f"Play Protect {verdict}" if verdict in risky else None


def _activity(facts: HealthFacts, param: str, now: datetime) -> str | None:
    level = facts.value("recent_device_activity")
    if level not in ACTIVITY_RANK:
        return None
    limit = ACTIVITY_RANK.get(param or "LEVEL_3", 3)
    return f"recent device activity {level}" if ACTIVITY_RANK[level] > limit else None


def _receipt(facts: HealthFacts, param: str, now: datetime) -> str | None:
    metric = facts.value("receipt_risk_metric")
    limit = int(param) if _whole_number(param) else 10
    return f"receipt risk metric {metric} (limit {limit})" if metric is not None and metric > limit else None


def _unattested(facts: HealthFacts, param: str, now: datetime) -> str | None:
    if facts.value("attested") is not False:
        return None
    reason = facts.value("unattested_reason")
    return f"device did not attest ({reason}): DPoP key only" if reason else "device did not attest: DPoP key only"

def _software_key(facts: HealthFacts, param: str, now: datetime) -> str | None:
    return "key attested by software only" if facts.value("key_security_level") == "software" else None


def _unlicensed(facts: HealthFacts, param: str, now: datetime) -> str | None:
    return "app not licensed" if facts.value("app_licensed") is False else None


def devicecheck_bits(param: str) -> tuple[str, ...]:
    """The bits a ``devicecheck_flagged`` parameter reads: ``0``, ``1`` or ``any`` (else ``0``)."""
    return ("0", "1") if param == "any" else ((param,) if param in {"0", "1"} else ("0",))


def _devicecheck(facts: HealthFacts, param: str, now: datetime) -> str | None:
    bits = devicecheck_bits(param)
    flagged = [b for b in bits if facts.value(f"devicecheck_bit{b}") is True]
    if not flagged:
        return None
    since = facts.value("devicecheck_last_update")
    return f"DeviceCheck bit{' and bit'.join(flagged)} set" + (f" (last update {since})" if since else "")


CONDITIONS: dict[str, Callable[[HealthFacts, str, datetime], str | None]] = {
    HealthCondition.BOOT_NOT_VERIFIED: _boot,
    HealthCondition.BOOTLOADER_UNLOCKED: _bootloader,
    HealthCondition.INTEGRITY_BELOW: _integrity,
    HealthCondition.APP_NOT_RECOGNIZED: _genuine,
    HealthCondition.PATCH_OLDER_THAN: _patch,
    HealthCondition.OS_VERSION_BELOW: _os_version,
    HealthCondition.SCREEN_CAPTURED: _capture,
    HealthCondition.DEBUGGER_ATTACHED: _debugger,
    HealthCondition.APP_ACCESS_RISK: _risky_apps,
    HealthCondition.PLAY_PROTECT_RISK: _play_protect,
    HealthCondition.DEVICE_ACTIVITY_ABOVE: _activity,
    HealthCondition.RECEIPT_RISK_ABOVE: _receipt,
    HealthCondition.UNATTESTED: _unattested,
    HealthCondition.SOFTWARE_KEY: _software_key,
    HealthCondition.APP_UNLICENSED: _unlicensed,
    HealthCondition.DEVICECHECK_FLAGGED: _devicecheck,
}
GRADED = frozenset(GradedFact)
# Defaults that apply even to a policy without "Include default rules": each stands where a
# refusal stood before (a graded fact's verifier refusal; an unattested device's refusal before
# the fallback) or for an operator's explicit decision (a phone flagged for abuse at Apple), so
# turning the other defaults off must not turn it into access.
ALWAYS_APPLIED = GRADED | {HealthCondition.UNATTESTED, HealthCondition.DEVICECHECK_FLAGGED}


# ------------------------------------------------------------------ rule sets

def graded_defaults(android_app: RegisteredApp | None = None) -> list[RuleSpec]:
    """Today's verifier refusals as rules, one per graded fact (``android_app``: the client's
    Android app, whose ``allow_software_keys`` / ``min_integrity_level`` are their defaults)."""
    deny = HealthOutcome.DENY
    level = android_app.min_integrity_level if android_app is not None else "device"
    rules = [
        RuleSpec("rooted-boot", HealthCondition.BOOT_NOT_VERIFIED, deny, platform="android",
                 message="This device runs a modified system (verified boot is off); restore the original system."),
        RuleSpec("unlocked-bootloader", HealthCondition.BOOTLOADER_UNLOCKED, deny, platform="android",
                 message="Lock the bootloader of this device to use it."),
        RuleSpec("integrity-failed", HealthCondition.INTEGRITY_BELOW, deny, parameter=level, platform="android",
                 message="Google Play could not confirm this device's integrity."),
        RuleSpec("app-not-genuine", HealthCondition.APP_NOT_RECOGNIZED, deny,
                 message="Install the app from the official store."),
        RuleSpec("app-unlicensed", HealthCondition.APP_UNLICENSED, deny, platform="android",
                 message="Get the app from Google Play with this account."),
    ]
    if android_app is None or not android_app.allow_software_keys:
        rules.append(RuleSpec("software-key", HealthCondition.SOFTWARE_KEY, deny, platform="android",
                              message="This device cannot keep keys in secure hardware."))
    return rules


def default_rules(android_app: RegisteredApp | None = None) -> list[RuleSpec]:
    """The secure defaults of clients without their own policy (docs/device-health.md)."""
    reduce = HealthOutcome.REDUCE
    update = "Install the latest system update, then sign in again."
    return [
        *graded_defaults(android_app),
        RuleSpec("outdated-patch", HealthCondition.PATCH_OLDER_THAN, reduce,
                 parameter=str(health_settings.MAX_PATCH_AGE_MONTHS), platform="android", message=update),
        RuleSpec("outdated-ios", HealthCondition.OS_VERSION_BELOW, reduce, parameter=health_settings.MIN_IOS_VERSION,
                 platform="ios", message=update),
        RuleSpec("screen-capture", HealthCondition.SCREEN_CAPTURED, reduce,
                 message="Turn off screen recording or mirroring; full access returns at the next refresh."),
        RuleSpec("capturing-apps", HealthCondition.APP_ACCESS_RISK, reduce, parameter=DEFAULT_RISKY_APPS,
                 platform="android", message="Close apps that record or control the screen."),
        RuleSpec("devicecheck-flagged", HealthCondition.DEVICECHECK_FLAGGED, HealthOutcome.DENY,
                 parameter=str(attestation_settings.DEVICECHECK_ABUSE_BIT), platform="ios",
                 message="This device was blocked for abuse; contact support."),
        RuleSpec(UNATTESTED_RULE, HealthCondition.UNATTESTED, reduce,
                 message="This device could not prove it runs the genuine app: access is limited."),
    ]


def rules_for_client(client: Any) -> tuple[RuleSpec, ...]:
    """The client's own enabled rules (in order), then the defaults unless it opted out.

    From this process's copy while no policy, rule or client changed (``core.config_cache``;
    ``policy.register`` watches the models): the token endpoint reads no policy row on a
    refresh. Immutable (a tuple of frozen rules): callers share it. The defaults read the
    ``ATTESTATION_HEALTH_*`` settings when loaded (a settings change in tests drops the copies)."""
    return config_cache.cached((RULES_KEY, client.pk), lambda: _load_rules(client))


def android_app_of(client: Any) -> RegisteredApp | None:
    return RegisteredApp.objects.filter(client=client, platform=Platform.ANDROID).first()


def _load_rules(client: Any) -> tuple[RuleSpec, ...]:
    defaults = default_rules(android_app_of(client))
    policy = HealthPolicy.objects.filter(client=client).prefetch_related("rules").first()
    if policy is None:
        return tuple(defaults)
    own = [
        RuleSpec(r.name, r.condition, r.outcome, r.parameter, r.platform,
                 r.scopes or policy.reduced_scopes or None, r.access_token_lifetime or policy.reduced_lifetime,
                 r.user_message)
        for r in policy.rules.all() if r.enabled
    ]
    scopes, lifetime = policy.reduced_scopes or None, policy.reduced_lifetime
    own += [
        replace(r, scopes=scopes, lifetime=lifetime) for r in defaults
        if not any(_replaces(mine, r) for mine in own)
        and (policy.include_default_rules or r.condition in ALWAYS_APPLIED)
    ]
    return tuple(own)


def integrity_rank(param: str) -> int:
    """The device-recognition level an ``integrity_below`` parameter asks for, as ``_integrity``
    reads it (empty: ``basic``; unknown: ``basic``; ``none`` / ``virtual``: nothing)."""
    return INTEGRITY_RANK.get(param or "basic", 1)


def _replaces(own: RuleSpec, default: RuleSpec) -> bool:
    """Whether a client's own rule takes a default's place. A graded default (a refusal the
    verifiers used to make) gives way only to a choice that covers it: a rule on its fact, for
    Android or any platform, and for device recognition one asking for at least the default's
    level (``basic=reduce`` alone leaves ``deny below device`` in place). Its name alone is not
    enough: an iOS rule named ``rooted-boot`` must not lift the Android refusal. The unattested
    default likewise gives way only to a rule on ``unattested`` for every platform, and the
    DeviceCheck default only to a rule on ``devicecheck_flagged`` (iOS or any) reading at least
    its bit. Other defaults give way to a rule of the same name."""
    if default.condition not in ALWAYS_APPLIED:
        return own.name == default.name
    platforms = ("", Platform.ANDROID) if default.condition in GRADED else ("", default.platform)
    if own.condition != default.condition or own.platform not in platforms:
        return False
    if own.condition == HealthCondition.DEVICECHECK_FLAGGED:  # a rule on bit 1 leaves the abuse bit's rule
        return set(devicecheck_bits(own.parameter)) >= set(devicecheck_bits(default.parameter))
    return own.condition != GradedFact.INTEGRITY_BELOW or integrity_rank(own.parameter) >= integrity_rank(
        default.parameter)


def decide(rules: Sequence[RuleSpec], facts: HealthFacts, platform: str, now: datetime) -> Decision:
    """Evaluate ``rules`` in order over ``facts``; see the module docstring for how outcomes combine."""
    decision = Decision()
    for rule in rules:
        # An unattested device's platform is its app's claim: a rule stored for one platform
        # before the admin refused them (``HealthRule.clean``) applies on both.
        if rule.platform and rule.platform != platform and rule.condition != HealthCondition.UNATTESTED:
            continue
        check = CONDITIONS.get(rule.condition)
        detail = check(facts, rule.parameter, now) if check else None
        if detail is None:
            continue
        finding = Finding(rule, detail)
        decision.findings.append(finding)
        if SEVERITY[HealthOutcome(rule.outcome)] > SEVERITY[HealthOutcome(decision.outcome)]:
            decision.outcome, decision.deciding = rule.outcome, finding
        if rule.outcome == HealthOutcome.REDUCE:
            _narrow(decision, rule)
    return decision


def _narrow(decision: Decision, rule: RuleSpec) -> None:
    kept = (rule.scopes if rule.scopes is not None else health_settings.REDUCED_SCOPES).split()
    if decision.scopes is not None:
        kept = [s for s in decision.scopes.split() if s in kept]
    decision.scopes = " ".join(kept)
    lifetime = min(rule.lifetime or health_settings.REDUCED_LIFETIME, 300)
    decision.lifetime = lifetime if decision.lifetime is None else min(decision.lifetime, lifetime)
