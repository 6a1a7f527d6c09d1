"""The CMS (RFC 5652) signature of an App Attest receipt, and its certificate path.

A receipt is a SignedData: the signer (``issuerAndSerialNumber``) signs the DER of its
signed attributes (RFC 5652 §5.4: re-tagged as a SET), whose ``message-digest`` attribute
is the digest of the encapsulated content. Apple signs receipts with a certificate that
chains to Apple Root CA - G3; configure that root (``ATTESTATION_APPLE_RECEIPT_ROOT_CERTS``)
to have every refreshed receipt verified before its risk metric is used.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from attestation.errors import AttestationError
from attestation.x509chain import verify_chain

DIGESTS = {"sha256": (hashlib.sha256, hashes.SHA256()), "sha384": (hashlib.sha384, hashes.SHA384()),
           "sha512": (hashlib.sha512, hashes.SHA512())}


class ReceiptSignatureError(Exception):
    """The receipt's signature or certificate path does not verify."""


def _certificates(signed: cms.SignedData) -> list[x509.Certificate]:
    return [x509.load_der_x509_certificate(choice.chosen.dump()) for choice in signed["certificates"] or []]


def _path(leaf: x509.Certificate, others: list[x509.Certificate]) -> list[x509.Certificate]:
    """Leaf first, each next certificate the issuer of the previous (the CMS set is unordered)."""
    path, pool = [leaf], [c for c in others if c != leaf]
    while True:
        issuer = next((c for c in pool if c.subject == path[-1].issuer and c != path[-1]), None)
        if issuer is None:
            return path
        path.append(issuer)
        pool.remove(issuer)


def _signer_certificate(signer: cms.SignerInfo, certs: list[x509.Certificate]) -> x509.Certificate:
    sid = signer["sid"].chosen
    if not isinstance(sid, cms.IssuerAndSerialNumber):
        raise ReceiptSignatureError("signer is not identified by issuer and serial number")
    serial = sid["serial_number"].native
    found = next(
        (c for c in certs if c.serial_number == serial and c.issuer.public_bytes() == sid["issuer"].dump()), None
    )
    if found is None:
        raise ReceiptSignatureError("the signer's certificate is not in the receipt")
    return found


def _check_signature(key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm) -> None:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        else:
            raise ReceiptSignatureError("unsupported signer key")
    except (InvalidSignature, UnsupportedAlgorithm) as exc:
        raise ReceiptSignatureError("the receipt's signature does not verify") from exc


def verify_receipt_signature(der: bytes, roots: Sequence[x509.Certificate], now: datetime) -> None:
    """Raise ``ReceiptSignatureError`` unless ``der`` is signed by a certificate chaining to ``roots``."""
    try:
        signed = cms.ContentInfo.load(der)["content"]
        content = signed["encap_content_info"]["content"].native or b""
        signer = signed["signer_infos"][0]
        certs = _certificates(signed)
        digest_name = signer["digest_algorithm"]["algorithm"].native
        attrs = signer["signed_attrs"]
        digests = [a["values"][0].native for a in attrs if a["type"].native == "message_digest"]
        signed_bytes = b"\x31" + attrs.dump()[1:]  # RFC 5652 §5.4: DER of the SET OF attributes
        signature = signer["signature"].native
    except (ValueError, TypeError, KeyError, IndexError, x509.InvalidVersion, UnsupportedAlgorithm) as exc:
        raise ReceiptSignatureError(f"receipt is not a CMS SignedData: {exc}") from exc
    if digest_name not in DIGESTS or len(digests) != 1:
        raise ReceiptSignatureError("unsupported digest or missing message-digest attribute")
    digest, algorithm = DIGESTS[digest_name]
    if not hmac.compare_digest(digests[0], digest(content).digest()):
        raise ReceiptSignatureError("the message digest does not match the receipt's content")
    try:  # certificates parse lazily: a malformed key or field surfaces here
        leaf = _signer_certificate(signer, certs)
        _check_signature(leaf.public_key(), signature, signed_bytes, algorithm)
        verify_chain(_path(leaf, certs), roots, now)
    except AttestationError as exc:
        raise ReceiptSignatureError(f"certificate path: {exc.reason} {exc.detail}") from exc
    except (ValueError, TypeError, x509.InvalidVersion, UnsupportedAlgorithm) as exc:
        raise ReceiptSignatureError(f"malformed certificate: {exc}") from exc
