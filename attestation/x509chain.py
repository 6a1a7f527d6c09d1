"""X.509 certificate-chain checks shared by the verifiers (pure, time injected).

``verify_chain`` walks leaf → intermediates → one trusted root: every link must be
signed by the next certificate (``cryptography``'s ``verify_directly_issued_by``
checks the issuer name and the signature), every issuer must be a CA, and every
certificate of the path, the root included, must be valid at ``now``. A broken link
or an unknown root is ``chain_untrusted``; a path that is sound but outside its
validity window is ``chain_expired``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

from .errors import AttestationError, Reason


def load_der_certificates(items: Iterable[object]) -> list[x509.Certificate]:
    """Parse DER certificates (as in CBOR ``x5c``); anything else is ``malformed_certificate``."""
    certs = []
    for item in items:
        if not isinstance(item, bytes | bytearray):
            raise AttestationError(Reason.MALFORMED_CERTIFICATE, "x5c entry is not a byte string")
        try:
            cert = x509.load_der_x509_certificate(bytes(item))
            _parse_fully(cert)
        except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
            raise AttestationError(Reason.MALFORMED_CERTIFICATE, str(exc)) from exc
        certs.append(cert)
    return certs


def _parse_fully(cert: x509.Certificate) -> None:
    """``cryptography`` parses some fields lazily: touch them all here, at the parser
    boundary, so a malformed field cannot raise later in the verifier."""
    cert.subject.rfc4514_string()
    cert.issuer.rfc4514_string()
    _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.serial_number, cert.version)
    _ = (cert.signature_hash_algorithm, cert.signature_algorithm_oid, cert.signature)
    cert.public_key()
    for extension in cert.extensions:
        _ = extension.value


def load_pem_files(paths: Iterable[str | Path]) -> list[x509.Certificate]:
    """Trust anchors from PEM files (each may hold several certificates)."""
    roots: list[x509.Certificate] = []
    for path in paths:
        roots.extend(x509.load_pem_x509_certificates(Path(path).read_bytes()))
    return roots


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_ca(cert: x509.Certificate, intermediates_below: int) -> bool:
    """A CA (BasicConstraints cA, keyCertSign when KeyUsage is present) whose pathLenConstraint
    allows ``intermediates_below`` CA certificates under it."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    if not constraints.ca:
        return False
    if constraints.path_length is not None and intermediates_below > constraints.path_length:
        return False
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    except ValueError:
        return False
    return bool(usage.key_cert_sign)


def _check_validity(path: Sequence[x509.Certificate], now: datetime) -> None:
    for cert in path:
        if now < cert.not_valid_before_utc:
            detail = f"{cert.subject.rfc4514_string()} not valid before {cert.not_valid_before_utc.isoformat()}"
            raise AttestationError(Reason.CHAIN_EXPIRED, detail)
        if now > cert.not_valid_after_utc:
            detail = f"{cert.subject.rfc4514_string()} expired {cert.not_valid_after_utc.isoformat()}"
            raise AttestationError(Reason.CHAIN_EXPIRED, detail)


def _strip_trusted_tail(chain: list[x509.Certificate], roots: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """An ``x5c`` may end with the root itself: drop it when it is byte-equal to a trusted root."""
    root_ders = {r.public_bytes(Encoding.DER) for r in roots}
    while len(chain) > 1 and chain[-1].public_bytes(Encoding.DER) in root_ders:
        chain = chain[:-1]
    return chain


def verify_chain(
    chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate], now: datetime
) -> list[x509.Certificate]:
    """Verify ``chain`` (leaf first) up to one of ``roots`` at ``now``; return the full path."""
    if not chain:
        raise AttestationError(Reason.MALFORMED_CERTIFICATE, "empty certificate chain")
    certs = _strip_trusted_tail(list(chain), roots)
    for below, (cert, issuer) in enumerate(zip(certs, certs[1:], strict=False)):
        if not _issued_by(cert, issuer):
            detail = f"{cert.subject.rfc4514_string()} is not signed by the next certificate"
            raise AttestationError(Reason.CHAIN_UNTRUSTED, detail)
        if not _is_ca(issuer, below):
            raise AttestationError(Reason.CHAIN_UNTRUSTED, f"{issuer.subject.rfc4514_string()} may not issue here")
    anchor = next((root for root in roots if _issued_by(certs[-1], root) and _is_ca(root, len(certs) - 1)), None)
    if anchor is None:
        raise AttestationError(Reason.CHAIN_UNTRUSTED, "chain does not end at a trusted root")
    path = [*certs, anchor]
    _check_validity(path, now)
    return path
