"""Authentication context classes we issue, and how ``amr`` maps onto them.

``amr`` values are RFC 8176's: ``pwd`` password, ``otp`` one-time code (TOTP or
recovery code), ``hwk``/``swk`` proof of a hardware/software key (passkey), ``user``
user verification (biometric or PIN) on the authenticator, ``mfa`` more than one factor.

The ``acr`` values Vigil issues (weakest first):

==================================== =====================================================
``urn:vigil:acr:password``           one factor: a password (``pwd``)
``urn:vigil:acr:mfa``                two factors: password + TOTP or recovery code
                                     (``pwd otp mfa``)
``urn:vigil:acr:phishing-resistant`` a passkey with user verification, alone or after a
                                     password (``hwk``/``swk`` + ``user`` + ``mfa``)
==================================== =====================================================

``hwk`` is a device-bound passkey (not backup-eligible), ``swk`` a synced one (backup
eligible, WebAuthn L3 §6.1.3): the private key of a synced passkey leaves the device.
"""

from __future__ import annotations

ACR_PASSWORD = "urn:vigil:acr:password"
ACR_MFA = "urn:vigil:acr:mfa"
ACR_PHISHING_RESISTANT = "urn:vigil:acr:phishing-resistant"

#: Weakest first; a request for a level is met by it or any stronger one.
ACR_ORDER = [ACR_PASSWORD, ACR_MFA, ACR_PHISHING_RESISTANT]
ACR_VALUES_SUPPORTED = list(ACR_ORDER)


def acr_for_amr(amr: list[str]) -> str:
    """The strongest class the methods in ``amr`` meet (a passkey counts only with UV or a password)."""
    methods = set(amr)
    if "hwk" in methods or "swk" in methods:
        if "user" in methods or "mfa" in methods:
            return ACR_PHISHING_RESISTANT
        return ACR_MFA if "pwd" in methods else ACR_PASSWORD
    if "mfa" in methods:
        return ACR_MFA
    return ACR_PASSWORD


def acr_satisfies(actual: str, wanted: str) -> bool:
    """Whether ``actual`` meets ``wanted`` (unknown values never match)."""
    if wanted not in ACR_ORDER:
        return False
    if actual not in ACR_ORDER:
        return False
    return ACR_ORDER.index(actual) >= ACR_ORDER.index(wanted)


def normalise_amr(methods: list[str]) -> list[str]:
    """Sorted unique values, adding ``mfa`` when two distinct factor kinds were used."""
    unique = sorted(set(methods) - {"mfa"})
    knowledge = {"pwd"} & set(unique)
    possession = {"otp", "hwk", "swk"} & set(unique)
    inherence_with_key = "user" in unique and bool({"hwk", "swk"} & set(unique))
    if (knowledge and possession) or inherence_with_key:
        unique.append("mfa")
    return sorted(unique)
