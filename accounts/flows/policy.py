"""Which step a login needs next: the one place MFA policy and ``acr`` requests are decided.

A request for an ``acr`` (OIDC Core §3.1.2.1 ``acr_values``) is met when the session's
``acr`` (from its RFC 8176 ``amr``) is at least that level. MFA is needed when the ``acr``
asks for it, when the user or the deployment requires it (``User.require_mfa``,
``IDP_REQUIRE_MFA``), or whenever the user has a second factor enrolled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.acr import ACR_MFA, ACR_ORDER, ACR_PASSWORD, ACR_PHISHING_RESISTANT, acr_for_amr, acr_satisfies
from core.app_settings import app_settings as idp_settings

from ..models import Passkey, User

DONE = "done"
LOGIN = "login"
VERIFY = "verify"
ENROLL = "enroll"


@dataclass(frozen=True)
class Decision:
    step: str
    methods: tuple[str, ...] = field(default=())
    enroll: str = ""  # "any" (TOTP or passkey) or "passkey"


def policy_requires_mfa(user: User) -> bool:
    """The user or the deployment requires a second factor (clients ask through ``acr``)."""
    return bool(getattr(user, "require_mfa", False) or idp_settings.REQUIRE_MFA)


def has_totp(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def has_passkey(user: User) -> bool:
    return Passkey.objects.filter(user=user).exists()


def has_recovery_codes(user: User) -> bool:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).exists()


def has_second_factor(user: User) -> bool:
    """TOTP or a passkey; recovery codes only back those up."""
    return has_totp(user) or has_passkey(user)


def clean_acr(wanted: str) -> str:
    """A requested ``acr`` we know, else "" (an unknown value asks for nothing we can prove)."""
    return wanted if wanted in ACR_ORDER else ""


def target_acr(user: User, wanted: str) -> str:
    wanted = clean_acr(wanted)
    if wanted == ACR_PHISHING_RESISTANT:
        return ACR_PHISHING_RESISTANT
    if wanted == ACR_MFA or policy_requires_mfa(user) or has_second_factor(user):
        return ACR_MFA
    return ACR_PASSWORD


def available_methods(user: User, passkey_only: bool = False) -> tuple[str, ...]:
    methods = []
    if not passkey_only:
        if has_totp(user):
            methods.append("totp")
        if has_recovery_codes(user):
            methods.append("recovery")
    if has_passkey(user):
        methods.append("passkey")
    return tuple(methods)


def decide(user: User, amr: list[str] | None, wanted: str) -> Decision:
    """The next step for ``user`` whose session (or pending login) proved ``amr``."""
    if user is None or amr is None:
        return Decision(LOGIN)
    target = target_acr(user, wanted)
    current = acr_for_amr(amr)
    if acr_satisfies(current, target):
        return Decision(DONE)
    if target == ACR_PHISHING_RESISTANT:
        if has_passkey(user):
            return Decision(VERIFY, methods=("passkey",))
        if not acr_satisfies(current, ACR_MFA) and has_totp(user):
            return Decision(VERIFY, methods=available_methods(user))
        return Decision(ENROLL, enroll="passkey")
    if has_second_factor(user):
        return Decision(VERIFY, methods=available_methods(user))
    return Decision(ENROLL, enroll="any")


def can_remove_factor(user: User, kind: str, passkey_id: int | None = None) -> bool:
    """Never leave a user whom policy requires to have MFA without a second factor."""
    if not policy_requires_mfa(user):
        return True
    totp = has_totp(user)
    passkeys = Passkey.objects.filter(user=user)
    if kind == "passkey" and passkey_id is not None:
        passkeys = passkeys.exclude(pk=passkey_id)
    remaining_passkeys = passkeys.exists()
    if kind == "totp":
        totp = False
    return totp or remaining_passkeys
