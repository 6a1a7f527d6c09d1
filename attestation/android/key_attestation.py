"""Android Key Attestation: verify an attestation certificate chain and its KeyDescription.

Follows Google's "Verify hardware-backed key pairs with key attestation"
(developer.android.com/privacy-and-security/security-key-attestation):

1. chain: strict DER, signatures, issuers are CAs          -> ``chain_untrusted``
2. root pinned by public key against Google's roots       -> ``chain_untrusted``
3. validity of each certificate at ``now``                -> ``chain_expired``
4. revocation status list                                  -> ``certificate_revoked``
5. KeyDescription in the leaf only, parsed                 -> ``malformed_extension``
6. attestationChallenge equals what we expect              -> ``challenge_mismatch``
7. attestation and KeyMint security levels (TEE/StrongBox) -> ``security_level_insufficient``
8. attestationApplicationId package name                   -> ``package_mismatch``
9. attestationApplicationId signing-certificate digests    -> ``signing_certificate_mismatch``
10. rootOfTrust verifiedBootState                          -> ``boot_state_unverified``
11. rootOfTrust deviceLocked                               -> ``bootloader_unlocked``

Steps 1-6 and 8-9 (authenticity and consistency) are always enforced. Steps 7, 10 and 11
judge facts of the device: ``AndroidKeyPolicy`` may accept them (``allow_software``,
``boot_states``, ``require_locked_bootloader``; ``AndroidKeyPolicy.graded``) and the facts are
returned for the client's device-health policy to grade (``attestation/grading.py``). A
``Failed`` boot state is never accepted: no attestation carries it (the bootloader halts).

Inputs that are not Django-aware (roots, revocation list) may be passed in; by default
they come from ``attestation.app_settings`` (see ``trusted_roots``).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ..app_settings import app_settings
from ..errors import AttestationError, Reason
from . import chain as chain_steps
from .digests import normalise_digest
from .keydescription import KEY_DESCRIPTION_OID, SECURITY_RANK, KeyDescriptionFacts, parse_key_description
from .revocation_store import current_status_list

# Every boot state a genuine attestation can carry ("Failed" never reaches an attestation).
ACCEPTABLE_BOOT_STATES = ("Verified", "SelfSigned", "Unverified")


@dataclass(frozen=True)
class AndroidKeyPolicy:
    """What a registered app accepts. Defaults are the production policy."""

    package_name: str | None = None
    signing_cert_digests: tuple[bytes, ...] | None = None
    allow_software: bool = False
    boot_states: frozenset[str] = frozenset({"Verified"})
    require_locked_bootloader: bool = True

    @classmethod
    def graded(
        cls,
        *,
        package_name: str | None,
        signing_cert_digests: tuple[bytes, ...] | None,
        refuse_software: bool,
        refuse_unverified_boot: bool,
        refuse_unlocked_bootloader: bool,
    ) -> AndroidKeyPolicy:
        """The policy of graded trust: authenticity always, each fact refused only when asked."""
        states = {"Verified"} if refuse_unverified_boot else set(ACCEPTABLE_BOOT_STATES)
        return cls(package_name, signing_cert_digests, not refuse_software, frozenset(states),
                   refuse_unlocked_bootloader)

    @classmethod
    def build(
        cls,
        *,
        package_name: str | None = None,
        signing_cert_digests: list[str] | list[bytes] | None = None,
        allow_software: bool = False,
        allow_unverified_boot: bool = False,
        allow_self_signed_boot: bool = False,
        allow_unlocked_bootloader: bool = False,
    ) -> AndroidKeyPolicy:
        states = {"Verified"}
        if allow_self_signed_boot:
            states.add("SelfSigned")
        if allow_unverified_boot:
            states |= {"SelfSigned", "Unverified"}
        digests = None
        if signing_cert_digests is not None:
            digests = tuple(normalise_digest(d) for d in signing_cert_digests)
        return cls(package_name, digests, allow_software, frozenset(states), not allow_unlocked_bootloader)


@dataclass(frozen=True)
class AndroidKeyAttestation:
    """The verified facts: the attested public key and everything the leaf told us."""

    public_key: PublicKeyTypes
    key_description: KeyDescriptionFacts
    security_level: str
    root_key_sha256: str
    serials: tuple[str, ...]
    not_after: dt.datetime

    @property
    def public_key_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    @property
    def key_id(self) -> str:
        """SHA-256 hex of the attested key's SubjectPublicKeyInfo: the device's key id."""
        spki = self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(spki).hexdigest()

    def facts(self) -> dict[str, Any]:
        """JSON-ready facts, kept on the Device and printed by the CLI."""
        kd = self.key_description
        rot = judged_root_of_trust(kd, self.security_level)
        app_id = kd.first("application_id")
        return {
            "key_id": self.key_id,
            "security_level": self.security_level,
            "attestation_version": kd.attestation_version,
            "attestation_security_level": kd.attestation_security_level,
            "keymint_version": kd.keymaster_version,
            "keymint_security_level": kd.keymaster_security_level,
            "attestation_challenge_hex": kd.attestation_challenge.hex(),
            "root_of_trust": None
            if rot is None
            else {
                "verified_boot_key_hex": rot.verified_boot_key.hex(),
                "device_locked": rot.device_locked,
                "verified_boot_state": rot.verified_boot_state,
                "verified_boot_hash_hex": rot.verified_boot_hash.hex() if rot.verified_boot_hash else None,
            },
            "packages": [list(p) for p in app_id.packages] if app_id else [],
            "signing_cert_digests_hex": [d.hex() for d in app_id.signature_digests] if app_id else [],
            "os_version": kd.first("os_version"),
            "os_patch_level": kd.first("os_patch_level"),
            "vendor_patch_level": kd.first("vendor_patch_level"),
            "boot_patch_level": kd.first("boot_patch_level"),
            "root_key_sha256": self.root_key_sha256,
            "chain_serials": list(self.serials),
            "chain_not_after": self.not_after.isoformat(),
            "unknown_tags": kd.extras.get("unknown_software_tags", []) + kd.extras.get("unknown_hardware_tags", []),
        }


def trusted_roots() -> list[chain_steps.TrustedRoot]:
    """Pinned keys from ``ATTESTATION_ANDROID_ROOT_CERTS`` (+ the test root if allowed)."""
    roots = list(_load_roots(tuple(app_settings.ANDROID_ROOT_CERTS)))
    if app_settings.ALLOW_TEST_ROOTS:
        from ..testing.google_pki import test_trusted_roots

        roots.extend(test_trusted_roots())
    return roots


@functools.lru_cache(maxsize=8)
def _load_roots(paths: tuple[str, ...]) -> tuple[chain_steps.TrustedRoot, ...]:
    """Root files are read once per configured set of paths (restart to pick up new bytes)."""
    return tuple(chain_steps.load_roots(list(paths)))


def revocation_list() -> dict[str, str]:
    """The shared list (the newest database row, per-process copy): ``revocation_store``."""
    return current_status_list()


def _root_validity() -> str:
    return app_settings.ANDROID_ROOT_VALIDITY


def _key_description(certs: list[chain_steps.ChainCert]) -> KeyDescriptionFacts:
    """Step 5: the extension is in the leaf and nowhere else (a leaf key with PURPOSE_SIGN
    could otherwise sign a forged certificate below it)."""
    for position, item in enumerate(certs[1:], start=1):
        if item.extension_value(KEY_DESCRIPTION_OID) is not None:
            raise AttestationError(Reason.CHAIN_UNTRUSTED, f"certificate {position} carries a KeyDescription")
    value = certs[0].extension_value(KEY_DESCRIPTION_OID)
    if value is None:
        raise AttestationError(Reason.MALFORMED_EXTENSION, "leaf has no KeyDescription extension")
    return parse_key_description(value)


def _check_security_level(kd: KeyDescriptionFacts, policy: AndroidKeyPolicy) -> str:
    """Step 7: the weaker of attestationSecurityLevel and keyMintSecurityLevel counts."""
    level = min(kd.attestation_security_level, kd.keymaster_security_level, key=SECURITY_RANK.__getitem__)
    if level == "Software" and not policy.allow_software:
        raise AttestationError(Reason.SECURITY_LEVEL_INSUFFICIENT, "key is not in a TEE or StrongBox")
    return level


def _check_application(kd: KeyDescriptionFacts, policy: AndroidKeyPolicy) -> None:
    """Steps 8-9: attestationApplicationId names our package and only our signing certs."""
    app_id = kd.first("application_id")
    if policy.package_name is not None:
        if app_id is None or policy.package_name not in app_id.package_names:
            raise AttestationError(Reason.PACKAGE_MISMATCH, f"key was not created by {policy.package_name}")
    if policy.signing_cert_digests is not None:
        attested = app_id.signature_digests if app_id else ()
        registered = policy.signing_cert_digests
        known = [any(hmac.compare_digest(d, r) for r in registered) for d in attested]
        if not attested or not all(known):
            raise AttestationError(Reason.SIGNING_CERT_MISMATCH, "app signing certificate is not registered")


def judged_root_of_trust(kd: KeyDescriptionFacts, level: str) -> Any:
    """The rootOfTrust steps 10-11 judge, and the one the facts report: the hardware list's; the
    software list's only for a software-level key. A TEE or StrongBox key whose rootOfTrust sits
    in ``softwareEnforced`` (where the OS, not the secure hardware, vouches) has none."""
    rot = kd.hardware_enforced.root_of_trust
    if rot is None and level == "Software":
        rot = kd.software_enforced.root_of_trust
    return rot


def _check_root_of_trust(kd: KeyDescriptionFacts, policy: AndroidKeyPolicy, level: str) -> None:
    """Steps 10-11; a software-level key has no hardware root of trust to judge."""
    rot = judged_root_of_trust(kd, level)
    if rot is None:
        if "Unverified" not in policy.boot_states or policy.require_locked_bootloader:
            raise AttestationError(Reason.BOOT_STATE_UNVERIFIED, "no rootOfTrust in the attestation")
        return
    if rot.verified_boot_state not in policy.boot_states:
        raise AttestationError(Reason.BOOT_STATE_UNVERIFIED, f"verified boot state is {rot.verified_boot_state}")
    if policy.require_locked_bootloader and not rot.device_locked:
        raise AttestationError(Reason.BOOTLOADER_UNLOCKED, "device bootloader is unlocked")


def verify_key_attestation(
    chain_pem: str | bytes,
    *,
    challenge: bytes,
    now: dt.datetime,
    policy: AndroidKeyPolicy | None = None,
    roots: list[chain_steps.TrustedRoot] | None = None,
    revoked: dict[str, str] | None = None,
    root_validity: str | None = None,
) -> AndroidKeyAttestation:
    """Verify a PEM chain (leaf first) for ``challenge`` at ``now``; raise ``AttestationError``."""
    policy = policy or AndroidKeyPolicy()
    certs = chain_steps.parse_chain(chain_pem)
    chain_steps.verify_signatures(certs)
    pinned = chain_steps.match_root(certs, trusted_roots() if roots is None else roots)
    chain_steps.check_validity(certs, now, pinned, root_validity or _root_validity())
    chain_steps.check_revocation(certs, revocation_list() if revoked is None else revoked)
    kd = _key_description(certs)
    if not hmac.compare_digest(kd.attestation_challenge, challenge):
        raise AttestationError(Reason.CHALLENGE_MISMATCH, "attestationChallenge differs from the expected challenge")
    level = _check_security_level(kd, policy)
    _check_application(kd, policy)
    _check_root_of_trust(kd, policy, level)
    return AndroidKeyAttestation(
        public_key=chain_steps.leaf_public_key(certs),
        key_description=kd,
        security_level=level,
        root_key_sha256=pinned[0].key_sha256,
        serials=tuple(c.serial_hex for c in certs),
        not_after=min(c.cert.not_valid_after_utc for c in certs),
    )
