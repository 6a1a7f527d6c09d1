"""Device health at the token endpoint and at our resource endpoints (``core/policy.py``).

``token_policy`` runs inside the issuing transaction of every grant bound to an attested
device (the code exchange that enrolls it, and every refresh): it reads the facts the
verifiers just stored on the request's device plus the self-reported signals verified in
this request's binding, decides, and

* allow: issues as asked;
* reduce: narrows the access token's scopes and lifetime (the refresh token keeps the
  granted scope: the restriction is decided again at each refresh);
* step-up: refuses (``invalid_grant``) unless the user authenticated within
  ``ATTESTATION_HEALTH_STEP_UP_MAX_AGE`` seconds, so the app sends the user through
  authorization again;
* deny: refuses (``invalid_grant``).

The hot path reads nothing it can avoid: the client's rules come from the config cache
(``rules_for_client``), the snapshot from the device when the query that loaded it brought
``device.health`` along (``evaluate.preloaded_health``), and an unchanged snapshot is not
written (``evaluate.persist``).

A refusal rolls the issuing transaction back, so the snapshot and the compliance event of
a refusal are kept after the rollback (``KeptAfterRollback``: the server's error handling
writes them, once; rendering the error writes nothing).

``resource_policy`` refuses at userinfo an access token whose device has since been denied
(e.g. by the periodic revalidation), or that carries more scopes than the device may use now.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidGrantError
from django.core.signals import setting_changed

from attestation.grading import register_refusals
from core import config_cache
from core.policy import (
    GrantType,
    KeptAfterRollback,
    PolicyDecision,
    ResourceContext,
    TokenContext,
    register_resource_policy,
    register_token_policy,
)
from core.resource_errors import ResourceError
from sessions.flows.refresh import registered_app

from .evaluate import evaluate, persist
from .grading import refusals
from .models import DeviceHealth, HealthOutcome, HealthPolicy, HealthRule
from .settings import health_settings

RESTRICTED_CLAIM = "device_health"


class DeviceHealthRefused(KeptAfterRollback, InvalidGrantError):
    """``invalid_grant`` for a device the health policy refuses; the snapshot that caused it
    is stored after the issuing transaction rolled back (``refuse``)."""


def refuse(description: str, evaluation: Any, context: TokenContext) -> DeviceHealthRefused:
    """The refusal, carrying the storing of ``evaluation`` past the rollback."""
    error = DeviceHealthRefused(description)
    error.keep_after_rollback(lambda: _persist(evaluation, context))
    return error


def _persist(evaluation: Any, context: TokenContext) -> None:
    persist(evaluation, context.now, trigger=context.grant_type, request=context.request, user=context.user)


def _step_up_satisfied(context: TokenContext) -> bool:
    session = context.session
    if context.grant_type != GrantType.AUTHORIZATION_CODE or session is None:
        return False
    return context.now - session.auth_time <= timedelta(seconds=health_settings.STEP_UP_MAX_AGE)


def _describe(evaluation: Any) -> str:
    finding = evaluation.decision.deciding
    message = f" {finding.rule.message}" if finding and finding.rule.message else ""
    return f"rule {finding.rule.name}: {finding.detail}.{message}" if finding else ""


def _device_client(context: TokenContext) -> Any:
    """The client whose rules judge the device: the one it enrolled with (its registered app's),
    whoever asks. A relying service exchanging the app's token (RFC 8693) is not that client:
    its own policy would grade the device by other rules (refusing, or dropping the reduction)
    and store that verdict as the device's. The app's client is the requesting one on the code
    exchange and the refresh (no extra read: the app comes from the config cache)."""
    device = context.device
    assert device is not None
    app = registered_app(device.app_id)  # the config cache: no query on the hot path
    return context.client if context.client is not None and app.client_id == context.client.pk else app.client


def token_policy(context: TokenContext) -> PolicyDecision | None:
    """The device-health outcome of this grant (see the module docstring)."""
    if context.device is None:
        return None

    evaluation = evaluate(context.device, context.device_signals, context.now, client=_device_client(context),
                          lock=True)
    outcome = evaluation.decision.outcome
    if outcome == HealthOutcome.DENY:
        raise refuse(
            f"The device does not meet this client's device health policy ({_describe(evaluation)})",
            evaluation,
            context,
        )
    if outcome == HealthOutcome.STEP_UP and not _step_up_satisfied(context):
        raise refuse(
            "Step-up required by the device health policy: send the user through authorization again "
            f"({_describe(evaluation)})",
            evaluation,
            context,
        )
    _persist(evaluation, context)
    if outcome != HealthOutcome.REDUCE:
        return None
    decision = evaluation.decision
    return PolicyDecision(
        scope=decision.scopes,
        access_token_lifetime=decision.lifetime,
        extra_claims={RESTRICTED_CLAIM: "reduced"},
        reasons=[f"device_health:{f.rule.name}" for f in decision.findings],
    )


def resource_policy(context: ResourceContext) -> None:
    """Refuse tokens of a device that is now denied, needs step-up, or is restricted to fewer scopes."""
    from core.resource_errors import ResourceErrorCode

    session = context.token.session
    if session is None or session.device_id is None:
        return
    health = (
        DeviceHealth.objects.filter(device_id=session.device_id)
        .only("outcome", "allowed_scopes", "deciding_rule")
        .first()
    )
    if health is None or health.outcome == HealthOutcome.ALLOW:
        return
    if health.outcome == HealthOutcome.DENY:
        raise ResourceError(
            ResourceErrorCode.INVALID_TOKEN, "The device no longer meets the device health policy.", 401
        )
    fresh = context.now - session.auth_time <= timedelta(seconds=health_settings.STEP_UP_MAX_AGE)
    if health.outcome == HealthOutcome.STEP_UP and not fresh:
        raise ResourceError(
            ResourceErrorCode.INVALID_TOKEN, "The device health policy requires step-up authentication.", 401
        )
    if health.outcome == HealthOutcome.REDUCE and health.allowed_scopes is not None:
        extra = set(str(context.claims.get("scope", "")).split()) - set(health.allowed_scopes.split())
        if extra:
            raise ResourceError(
                ResourceErrorCode.INSUFFICIENT_SCOPE, "The device is restricted to fewer scopes now.", 403
            )


def register() -> None:
    """Idempotent (``register_*`` ignores a policy registered twice, signals connect by uid).
    A saved or deleted policy or rule reaches every process's rules copy (``rules_for_client``)."""
    register_token_policy(token_policy)
    register_resource_policy(resource_policy)
    register_refusals(refusals)  # graded trust: which facts the Android verifiers refuse outright
    config_cache.watch(HealthPolicy, HealthRule)
    setting_changed.connect(_health_setting_changed, dispatch_uid="attestation-health-setting-changed")


RULE_SETTINGS = {
    "ATTESTATION_HEALTH_MAX_PATCH_AGE_MONTHS",
    "ATTESTATION_HEALTH_MIN_IOS_VERSION",
    "ATTESTATION_DEVICECHECK_ABUSE_BIT",
}


def _health_setting_changed(setting: str, **kwargs: Any) -> None:
    """The default rules read these settings when loaded: drop the copies when a test changes one."""
    if setting in RULE_SETTINGS:
        config_cache.clear_local()
