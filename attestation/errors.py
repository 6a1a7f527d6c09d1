"""Attestation failures: one exception type carrying a stable, machine-readable reason.

Every verifier step raises ``AttestationError(reason, detail)``; parsers convert library
exceptions (cbor2, asn1crypto, cryptography, joserfc, base64) into ``malformed_*`` reasons
at their boundary, so nothing reaches a 500. The OAuth layer maps these onto
``invalid_client_attestation`` / ``use_attestation_challenge`` errors.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """The stable reasons a verifier refuses for (``AttestationError.reason``); the wire and
    security-event value of each is its string."""

    # challenges
    CHALLENGE_UNKNOWN = "challenge_unknown"
    CHALLENGE_EXPIRED = "challenge_expired"
    CHALLENGE_REUSED = "challenge_reused"
    CHALLENGE_WRONG_CLIENT = "challenge_wrong_client"
    CHALLENGE_WRONG_PURPOSE = "challenge_wrong_purpose"
    # encoding
    MALFORMED_BASE64 = "malformed_base64"
    MALFORMED_CBOR = "malformed_cbor"
    MALFORMED_AUTHENTICATOR_DATA = "malformed_authenticator_data"
    MALFORMED_CERTIFICATE = "malformed_certificate"
    MALFORMED_EXTENSION = "malformed_extension"
    MALFORMED_TOKEN = "malformed_token"
    MALFORMED_KEY_ID = "malformed_key_id"  # attestation_key_id is not a 32-byte key id in any spelling
    UNSUPPORTED_FORMAT = "unsupported_format"
    # certificate chains
    CHAIN_UNTRUSTED = "chain_untrusted"
    CHAIN_EXPIRED = "chain_expired"
    CERTIFICATE_REVOKED = "certificate_revoked"
    REVOCATION_LIST_UNAVAILABLE = "revocation_list_unavailable"  # the stored status list cannot be read
    # Apple App Attest
    NONCE_MISMATCH = "nonce_mismatch"
    KEY_ID_MISMATCH = "key_id_mismatch"
    APP_ID_MISMATCH = "app_id_mismatch"
    COUNTER_NOT_ZERO = "counter_not_zero"
    COUNTER_NOT_INCREASING = "counter_not_increasing"
    AAGUID_MISMATCH = "aaguid_mismatch"
    CREDENTIAL_ID_MISMATCH = "credential_id_mismatch"
    SIGNATURE_INVALID = "signature_invalid"
    # Android Key Attestation
    CHALLENGE_MISMATCH = "challenge_mismatch"
    SECURITY_LEVEL_INSUFFICIENT = "security_level_insufficient"
    PACKAGE_MISMATCH = "package_mismatch"
    SIGNING_CERT_MISMATCH = "signing_certificate_mismatch"
    BOOT_STATE_UNVERIFIED = "boot_state_unverified"
    BOOTLOADER_UNLOCKED = "bootloader_unlocked"
    # Play Integrity
    INTEGRITY_TOKEN_INVALID = "integrity_token_invalid"
    REQUEST_HASH_MISMATCH = "request_hash_mismatch"
    VERDICT_STALE = "verdict_stale"
    APP_NOT_RECOGNIZED = "app_not_recognized"
    INTEGRITY_VERDICT_INSUFFICIENT = "integrity_verdict_insufficient"
    UNLICENSED = "unlicensed"
    TESTING_RESPONSE = "testing_response"
    INTEGRITY_API_UNAVAILABLE = "integrity_api_unavailable"
    APP_ACCESS_RISK = "app_access_risk"
    # Apple DeviceCheck
    DEVICECHECK_TOKEN_REQUIRED = "devicecheck_token_required"  # the app requires one; none was sent
    DEVICECHECK_TOKEN_INVALID = "devicecheck_token_invalid"  # malformed, or Apple refused it
    DEVICECHECK_UNAVAILABLE = "devicecheck_unavailable"  # Apple's API failed and the app fails closed
    # devices
    DEVICE_SUSPENDED = "device_suspended"
    DEVICE_REVOKED = "device_revoked"
    DEVICE_MISMATCH = "device_mismatch"
    ATTESTATION_REQUIRED = "attestation_required"
    INTEGRITY_TOKEN_REQUIRED = "integrity_token_required"  # the rest of the evidence is there
    # the fallback for devices that cannot attest (docs/unattested-devices.md)
    UNATTESTED_NOT_ALLOWED = "unattested_not_allowed"  # an attested session cannot go unattested
    UNATTESTED_PARAMETERS_INVALID = "unattested_parameters_invalid"  # attestation_platform / _unavailable_reason
    UNATTESTED_DPOP_REQUIRED = "unattested_dpop_required"  # the DPoP key is the device key


#: What an honest app's retry presents: a challenge an earlier attempt consumed before its answer
#: was lost or failed (a 503 after the claim: the database or Redis gone mid-request), or one kept
#: too long. The token endpoint refuses it with a fresh challenge and records it, but counts it
#: in no failure streak (the shared counter, the risk engine's): a stale challenge can never pass,
#: so it hides no forgery, and on a DPoP-bound family only the key's holder gets that far (its
#: proof is marked first; a family without DPoP needs only its refresh token, as before).
STALE_CHALLENGE: frozenset[Reason] = frozenset({Reason.CHALLENGE_REUSED, Reason.CHALLENGE_EXPIRED})
#: A service the verification needs failed: Apple's DeviceCheck (an app that fails closed), Google's
#: Play Integrity API (unreachable, quota, no service account), or our stored revocation list. It
#: proves nothing against the device: the token endpoint answers 503 ``temporarily_unavailable``
#: with ``Retry-After`` and counts it in no failure streak, so an outage never revokes a session.
SERVICE_OUTAGE: frozenset[Reason] = frozenset(
    {Reason.DEVICECHECK_UNAVAILABLE, Reason.INTEGRITY_API_UNAVAILABLE, Reason.REVOCATION_LIST_UNAVAILABLE}
)
#: Refusals recorded but no failure of the device: left out of every failure streak.
NOT_THE_DEVICES_FAILURE: frozenset[Reason] = STALE_CHALLENGE | SERVICE_OUTAGE


class AttestationError(Exception):
    """A verification step failed; ``reason`` is one of ``Reason``'s stable codes."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
