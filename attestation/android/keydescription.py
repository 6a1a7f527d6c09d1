"""ASN.1 schema and parser of the Android Key Attestation ``KeyDescription`` extension.

The extension (OID 1.3.6.1.4.1.11129.2.1.17) sits in the leaf of the attestation chain.
Its schema is Google's "Key attestation extension data schema"
(developer.android.com/privacy-and-security/security-key-attestation#key_attestation_ext_schema),
versions 1 (Keymaster 2) up to 400 (KeyMint 4). The classes below are used both to
parse device data and, by ``attestation.testing.google_pki``, to build test leaves,
so what we parse and what we mint cannot drift apart.

``parse_key_description(der)`` is the parser boundary: any asn1crypto/ValueError
becomes ``AttestationError(Reason.MALFORMED_EXTENSION)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from asn1crypto import core, parser

from ..errors import AttestationError, Reason

KEY_DESCRIPTION_OID = "1.3.6.1.4.1.11129.2.1.17"

SECURITY_LEVELS = {0: "Software", 1: "TrustedEnvironment", 2: "StrongBox"}
BOOT_STATES = {0: "Verified", 1: "SelfSigned", 2: "Unverified", 3: "Failed"}
SECURITY_RANK = {"Software": 0, "TrustedEnvironment": 1, "StrongBox": 2}


class SecurityLevel(core.Enumerated):
    _map = SECURITY_LEVELS


class VerifiedBootState(core.Enumerated):
    _map = BOOT_STATES


class SetOfInteger(core.SetOf):
    _child_spec = core.Integer


class SetOfOctetString(core.SetOf):
    _child_spec = core.OctetString


class RootOfTrust(core.Sequence):
    """``RootOfTrust``; ``verifiedBootHash`` appears from attestation version 3."""

    _fields = [
        ("verified_boot_key", core.OctetString),
        ("device_locked", core.Boolean),
        ("verified_boot_state", VerifiedBootState),
        ("verified_boot_hash", core.OctetString, {"optional": True}),
    ]


class AttestationPackageInfo(core.Sequence):
    _fields = [("package_name", core.OctetString), ("version", core.Integer)]


class SetOfPackageInfo(core.SetOf):
    _child_spec = AttestationPackageInfo


class AttestationApplicationId(core.Sequence):
    """Carried DER-encoded inside the ``attestationApplicationId`` OCTET STRING (tag 709)."""

    _fields = [
        ("package_infos", SetOfPackageInfo),
        ("signature_digests", SetOfOctetString),
    ]


def _tag(name: str, spec: Any, number: int) -> tuple[str, Any, dict[str, Any]]:
    return (name, spec, {"explicit": number, "optional": True})


class AuthorizationList(core.Sequence):
    """``AuthorizationList``: every field is an EXPLICIT context tag, in tag order."""

    _fields = [
        _tag("purpose", SetOfInteger, 1),
        _tag("algorithm", core.Integer, 2),
        _tag("key_size", core.Integer, 3),
        _tag("block_mode", SetOfInteger, 4),
        _tag("digest", SetOfInteger, 5),
        _tag("padding", SetOfInteger, 6),
        _tag("caller_nonce", core.Null, 7),
        _tag("min_mac_length", core.Integer, 8),
        _tag("ec_curve", core.Integer, 10),
        _tag("rsa_public_exponent", core.Integer, 200),
        _tag("mgf_digest", SetOfInteger, 203),
        _tag("rollback_resistance", core.Null, 303),
        _tag("early_boot_only", core.Null, 305),
        _tag("active_date_time", core.Integer, 400),
        _tag("origination_expire_date_time", core.Integer, 401),
        _tag("usage_expire_date_time", core.Integer, 402),
        _tag("usage_count_limit", core.Integer, 405),
        _tag("no_auth_required", core.Null, 503),
        _tag("user_auth_type", core.Integer, 504),
        _tag("auth_timeout", core.Integer, 505),
        _tag("allow_while_on_body", core.Null, 506),
        _tag("trusted_user_presence_required", core.Null, 507),
        _tag("trusted_confirmation_required", core.Null, 508),
        _tag("unlocked_device_required", core.Null, 509),
        _tag("all_applications", core.Null, 600),
        _tag("application_id", core.OctetString, 601),
        _tag("creation_date_time", core.Integer, 701),
        _tag("origin", core.Integer, 702),
        _tag("rollback_resistant", core.Null, 703),
        _tag("root_of_trust", RootOfTrust, 704),
        _tag("os_version", core.Integer, 705),
        _tag("os_patch_level", core.Integer, 706),
        _tag("attestation_application_id", core.OctetString, 709),
        _tag("attestation_id_brand", core.OctetString, 710),
        _tag("attestation_id_device", core.OctetString, 711),
        _tag("attestation_id_product", core.OctetString, 712),
        _tag("attestation_id_serial", core.OctetString, 713),
        _tag("attestation_id_imei", core.OctetString, 714),
        _tag("attestation_id_meid", core.OctetString, 715),
        _tag("attestation_id_manufacturer", core.OctetString, 716),
        _tag("attestation_id_model", core.OctetString, 717),
        _tag("vendor_patch_level", core.Integer, 718),
        _tag("boot_patch_level", core.Integer, 719),
        _tag("device_unique_attestation", core.Null, 720),
        _tag("identity_credential_key", core.Null, 721),
        _tag("attestation_id_second_imei", core.OctetString, 723),
        _tag("module_hash", core.OctetString, 724),
    ]


class KeyDescription(core.Sequence):
    """``KeyDescription``; ``keymaster_version`` is ``keyMintVersion`` from version 100."""

    _fields = [
        ("attestation_version", core.Integer),
        ("attestation_security_level", SecurityLevel),
        ("keymaster_version", core.Integer),
        ("keymaster_security_level", SecurityLevel),
        ("attestation_challenge", core.OctetString),
        ("unique_id", core.OctetString),
        ("software_enforced", AuthorizationList),
        ("hardware_enforced", AuthorizationList),
    ]


_TAG_NUMBERS: dict[str, int] = {name: opts["explicit"] for name, _spec, opts in AuthorizationList._fields}
_KNOWN_TAGS = frozenset(_TAG_NUMBERS.values())


class _RawKeyDescription(core.Sequence):
    """KeyDescription with both AuthorizationLists kept as raw DER, read element by element
    (``_canonical_list``) to check the tag order and skip unknown tags."""

    _fields = [*KeyDescription._fields[:6], ("software_enforced", core.Any), ("hardware_enforced", core.Any)]


def _der_sequence(body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return b"\x30" + bytes([size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return b"\x30" + bytes([0x80 | len(length)]) + length + body


def _canonical_list(raw: core.Any) -> tuple[bytes, tuple[int, ...]]:
    """Keep the known tags (strictly ascending, as the schema orders them); report unknown
    ones (a newer KeyMint may add tags; Google's own parser ignores them)."""
    class_, method, tag, _header, body, _trailer = parser.parse(raw.dump(), strict=True)
    if (class_, method, tag) != (0, 1, 16):
        raise ValueError("AuthorizationList is not a SEQUENCE")
    known: list[bytes] = []
    unknown: list[int] = []
    last = -1
    while body:
        class_, _method, tag, header, contents, trailer = parser.parse(body)
        encoded = header + contents + trailer
        body = body[len(encoded) :]
        if class_ != 2 or tag <= last:
            raise ValueError(f"AuthorizationList tag {tag} is out of order, repeated or not context-specific")
        last = tag
        if tag in _KNOWN_TAGS:
            known.append(encoded)
        else:
            unknown.append(tag)
    return _der_sequence(b"".join(known)), tuple(unknown)


@dataclass(frozen=True)
class RootOfTrustFacts:
    verified_boot_key: bytes
    device_locked: bool
    verified_boot_state: str
    verified_boot_hash: bytes | None


@dataclass(frozen=True)
class ApplicationId:
    packages: tuple[tuple[str, int], ...]
    signature_digests: tuple[bytes, ...]

    @property
    def package_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.packages)


@dataclass(frozen=True)
class Authorizations:
    """The facts of one ``AuthorizationList`` that policy and health checks use."""

    purposes: tuple[int, ...] = ()
    algorithm: int | None = None
    key_size: int | None = None
    ec_curve: int | None = None
    origin: int | None = None
    root_of_trust: RootOfTrustFacts | None = None
    os_version: int | None = None
    os_patch_level: int | None = None
    vendor_patch_level: int | None = None
    boot_patch_level: int | None = None
    application_id: ApplicationId | None = None
    tags: tuple[int, ...] = ()


@dataclass(frozen=True)
class KeyDescriptionFacts:
    attestation_version: int
    attestation_security_level: str
    keymaster_version: int
    keymaster_security_level: str
    attestation_challenge: bytes
    unique_id: bytes
    software_enforced: Authorizations
    hardware_enforced: Authorizations
    extras: dict[str, Any] = field(default_factory=dict)

    def first(self, name: str) -> Any:
        """A field from the hardware-enforced list, falling back to the software list."""
        value = getattr(self.hardware_enforced, name)
        return value if value is not None else getattr(self.software_enforced, name)


def _int_or_none(value: Any) -> int | None:
    return None if isinstance(value, core.Void) else int(value.native)


def _root_of_trust(value: Any) -> RootOfTrustFacts | None:
    if isinstance(value, core.Void):
        return None
    boot_hash = value["verified_boot_hash"]
    return RootOfTrustFacts(
        verified_boot_key=bytes(value["verified_boot_key"].native),
        device_locked=bool(value["device_locked"].native),
        verified_boot_state=str(value["verified_boot_state"].native),
        verified_boot_hash=None if isinstance(boot_hash, core.Void) else bytes(boot_hash.native),
    )


def parse_application_id(der: bytes) -> ApplicationId:
    """Decode the DER ``AttestationApplicationId`` carried in tag 709."""
    app_id = AttestationApplicationId.load(der, strict=True)
    packages = tuple(
        (bytes(info["package_name"].native).decode("utf-8"), int(info["version"].native))
        for info in app_id["package_infos"]
    )
    digests = tuple(bytes(d.native) for d in app_id["signature_digests"])
    return ApplicationId(packages=packages, signature_digests=digests)


def _authorizations(auth: AuthorizationList) -> Authorizations:
    app_id_value = auth["attestation_application_id"]
    purposes = auth["purpose"]
    return Authorizations(
        purposes=() if isinstance(purposes, core.Void) else tuple(int(p.native) for p in purposes),
        algorithm=_int_or_none(auth["algorithm"]),
        key_size=_int_or_none(auth["key_size"]),
        ec_curve=_int_or_none(auth["ec_curve"]),
        origin=_int_or_none(auth["origin"]),
        root_of_trust=_root_of_trust(auth["root_of_trust"]),
        os_version=_int_or_none(auth["os_version"]),
        os_patch_level=_int_or_none(auth["os_patch_level"]),
        vendor_patch_level=_int_or_none(auth["vendor_patch_level"]),
        boot_patch_level=_int_or_none(auth["boot_patch_level"]),
        application_id=None
        if isinstance(app_id_value, core.Void)
        else parse_application_id(bytes(app_id_value.native)),
        tags=tuple(number for name, number in _TAG_NUMBERS.items() if not isinstance(auth[name], core.Void)),
    )


def parse_key_description(der: bytes) -> KeyDescriptionFacts:
    """Parse the extension value (the DER inside extnValue). Raises ``malformed_extension``."""
    try:
        raw = _RawKeyDescription.load(der, strict=True)
        software, unknown_sw = _canonical_list(raw["software_enforced"])
        hardware, unknown_hw = _canonical_list(raw["hardware_enforced"])
        head = b"".join(raw[index].dump() for index in range(6))
        kd = KeyDescription.load(_der_sequence(head + software + hardware), strict=True)
        kd.native  # noqa: B018 - force a full, strict decode of every nested value
        return KeyDescriptionFacts(
            attestation_version=int(kd["attestation_version"].native),
            attestation_security_level=str(kd["attestation_security_level"].native),
            keymaster_version=int(kd["keymaster_version"].native),
            keymaster_security_level=str(kd["keymaster_security_level"].native),
            attestation_challenge=bytes(kd["attestation_challenge"].native),
            unique_id=bytes(kd["unique_id"].native),
            software_enforced=_authorizations(kd["software_enforced"]),
            hardware_enforced=_authorizations(kd["hardware_enforced"]),
            extras={"unknown_software_tags": list(unknown_sw), "unknown_hardware_tags": list(unknown_hw)},
        )
    except AttestationError:
        raise
    except Exception as exc:  # noqa: BLE001 - asn1crypto raises many types on hostile input
        raise AttestationError(Reason.MALFORMED_EXTENSION, f"KeyDescription: {exc}") from exc
