"""Certificate-chain steps of Android Key Attestation, in Google's documented order
("Verify hardware-backed key pairs with key attestation", developer.android.com):

1. decode the chain (leaf first) strictly: DER only, a non-DER signature algorithm
   encoding is refused (one public StrongBox leaf writes ``ecdsa-with-SHA256`` with an
   explicit NULL parameter, which RFC 5758 §3.2 forbids);
2. check every signature up the chain, issuers being CAs and names chaining;
3. pin the root by its public key (SPKI) against Google's roots: the four RSA roots
   (2016, 2019, 2021, 2022) share one key, and the 2016 certificate expired on
   2026-05-24, so matching certificates byte for byte would be wrong;
4. check each certificate's validity at ``now``;
5. refuse serial numbers on the attestation revocation status list.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.utils import CryptographyDeprecationWarning

from ..errors import AttestationError, Reason

MAX_CHAIN_LENGTH = 10
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----")
_ECDSA_ALGORITHMS = {"sha1_ecdsa", "sha224_ecdsa", "sha256_ecdsa", "sha384_ecdsa", "sha512_ecdsa"}


@dataclass(frozen=True)
class ChainCert:
    """One certificate in two views: ``cert`` (cryptography, strict) and ``asn1`` (fields)."""

    der: bytes
    cert: x509.Certificate
    asn1: asn1_x509.Certificate

    @property
    def spki_der(self) -> bytes:
        return self.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def serial_hex(self) -> str:
        """Lower-case hex without leading zeros, as Google's status list writes serials."""
        return format(self.cert.serial_number, "x")

    def extension_value(self, oid: str) -> bytes | None:
        for ext in self.asn1["tbs_certificate"]["extensions"]:
            if ext["extn_id"].dotted == oid:
                return bytes(ext["extn_value"].contents)
        return None


@dataclass(frozen=True)
class TrustedRoot:
    """A pinned root: its SPKI and the validity of the certificate that shipped it."""

    spki_der: bytes
    not_before: dt.datetime
    not_after: dt.datetime
    source: str

    @property
    def key_sha256(self) -> str:
        return hashlib.sha256(self.spki_der).hexdigest()


def split_pem(data: str | bytes) -> list[bytes]:
    """DER bytes of every ``CERTIFICATE`` PEM block, in order. Raises ``malformed_certificate``."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    blocks = _PEM_BLOCK.findall(raw)
    if not blocks:
        raise AttestationError(Reason.MALFORMED_CERTIFICATE, "no PEM certificate found")
    if len(blocks) > MAX_CHAIN_LENGTH:
        raise AttestationError(Reason.MALFORMED_CERTIFICATE, f"chain longer than {MAX_CHAIN_LENGTH}")
    try:
        return [base64.b64decode(b"".join(block.split()), validate=True) for block in blocks]
    except (binascii.Error, ValueError) as exc:
        raise AttestationError(Reason.MALFORMED_CERTIFICATE, "PEM body is not base64") from exc


def parse_certificate(der: bytes) -> ChainCert:
    """Strict DER decoding; the signature algorithm must be canonically encoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", CryptographyDeprecationWarning)  # e.g. a serial <= 0 (RFC 5280 §4.1.2.2)
            cert = x509.load_der_x509_certificate(der)
        # cryptography and asn1crypto decode lazily: force every field here, at the boundary
        cert.extensions, cert.public_key(), cert.subject, cert.issuer  # noqa: B018
        cert.not_valid_before_utc, cert.not_valid_after_utc, cert.signature_hash_algorithm  # noqa: B018
        asn1 = asn1_x509.Certificate.load(der, strict=True)
        asn1.native  # noqa: B018
        algorithm = asn1["signature_algorithm"]
        inner = asn1["tbs_certificate"]["signature"]
        name = algorithm["algorithm"].native
    except Exception as exc:  # noqa: BLE001 - both libraries raise many types on hostile DER
        raise AttestationError(Reason.MALFORMED_CERTIFICATE, f"not a strict DER certificate: {exc}") from exc
    if algorithm.dump() != inner.dump():
        raise AttestationError(Reason.MALFORMED_CERTIFICATE, "signatureAlgorithm differs from tbsCertificate.signature")
    if name in _ECDSA_ALGORITHMS and algorithm.contents != algorithm["algorithm"].dump():
        raise AttestationError(Reason.MALFORMED_CERTIFICATE, "ECDSA signature algorithm carries parameters")
    return ChainCert(der=der, cert=cert, asn1=asn1)


def parse_chain(data: str | bytes) -> list[ChainCert]:
    return [parse_certificate(der) for der in split_pem(data)]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _check_signed_by(child: ChainCert, issuer: ChainCert, position: int, issuer_position: int) -> None:
    if not _is_ca(issuer.cert):
        raise AttestationError(Reason.CHAIN_UNTRUSTED, f"certificate {issuer_position} is not a CA")
    try:
        child.cert.verify_directly_issued_by(issuer.cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
        raise AttestationError(
            Reason.CHAIN_UNTRUSTED, f"certificate {position} is not signed by certificate {issuer_position}"
        ) from exc


def verify_signatures(chain: list[ChainCert]) -> None:
    """Step 2: every certificate is signed by the next (a CA); the last one is self-signed."""
    if len(chain) < 2:
        raise AttestationError(Reason.CHAIN_UNTRUSTED, "a key attestation chain has at least two certificates")
    for position in range(len(chain) - 1):
        _check_signed_by(chain[position], chain[position + 1], position, position + 1)
    last = len(chain) - 1
    _check_signed_by(chain[last], chain[last], last, last)


def load_roots(paths: list[str]) -> list[TrustedRoot]:
    """Read trusted root certificates (PEM files) as pinned keys."""
    roots: list[TrustedRoot] = []
    for path in paths:
        for der in split_pem(Path(path).read_bytes()):
            cert = x509.load_der_x509_certificate(der)
            spki = cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            roots.append(TrustedRoot(spki, cert.not_valid_before_utc, cert.not_valid_after_utc, str(path)))
    return roots


def match_root(chain: list[ChainCert], roots: list[TrustedRoot]) -> list[TrustedRoot]:
    """Step 3: the pinned roots whose key is the chain root's key (may be several)."""
    spki = chain[-1].spki_der
    matches = [root for root in roots if root.spki_der == spki]
    if not matches:
        digest = hashlib.sha256(spki).hexdigest()[:16]
        raise AttestationError(Reason.CHAIN_UNTRUSTED, f"root key {digest}... is not a trusted Google root")
    return matches


def check_validity(
    chain: list[ChainCert], now: dt.datetime, pinned: list[TrustedRoot], root_validity: str = "presented"
) -> None:
    """Step 4. ``root_validity="presented"`` judges the chain's own root certificate (the
    strict reading, as OpenSSL does); ``"pinned"`` judges the root key by the longest valid
    pinned certificate carrying it (Java PKIX trust-anchor semantics)."""
    for position, item in enumerate(chain):
        start, end = item.cert.not_valid_before_utc, item.cert.not_valid_after_utc
        if position == len(chain) - 1 and root_validity == "pinned":
            start, end = min(r.not_before for r in pinned), max(r.not_after for r in pinned)
        if now < start:
            raise AttestationError(Reason.CHAIN_EXPIRED, f"certificate {position} not valid before {start.isoformat()}")
        if now > end:
            raise AttestationError(Reason.CHAIN_EXPIRED, f"certificate {position} expired {end.isoformat()}")


def check_revocation(chain: list[ChainCert], revoked: dict[str, str]) -> None:
    """Step 5: ``revoked`` maps normalised hex serials to their status (REVOKED/SUSPENDED)."""
    for position, item in enumerate(chain):
        status = revoked.get(item.serial_hex)
        if status:
            raise AttestationError(
                Reason.CERTIFICATE_REVOKED, f"certificate {position} serial {item.serial_hex} is {status}"
            )


def leaf_public_key(chain: list[ChainCert]) -> PublicKeyTypes:
    return chain[0].cert.public_key()
