"""Android kinds of ``manage.py verify_attestation`` (registered into ``attestation.cli_kinds``).

* ``android-key CHAIN.pem --challenge HEX [--package NAME] [--signing-digest D ...]
  [--allow-software] [--allow-unverified-boot] [--allow-unlocked] [--root PEM ...]
  [--revocation-list JSON] [--root-validity presented|pinned]``
* ``play-integrity FILE --package NAME (--nonce N | --request-hash H) [--policy strong|device|basic]``
  where FILE is a decoded verdict (a bare ``tokenPayloadExternal``, Google's
  ``{"tokenPayloadExternal": ...}`` response, or ``{"verdict": ...}``), or a classic token
  with ``--decryption-key B64 --verification-key B64``. Extra policy flags: ``--max-age``,
  ``--allow-unrecognized``, ``--allow-unlicensed``, ``--allow-testing``,
  ``--signing-digest``, ``--refuse-apps-detected``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from ..cli_kinds import hex_bytes, register
from ..errors import AttestationError, Reason
from . import chain as chain_steps
from .digests import normalise_digest
from .key_attestation import AndroidKeyPolicy, verify_key_attestation
from .keydescription import KEY_DESCRIPTION_OID, parse_key_description
from .play_integrity import IntegrityPolicy, check_verdict, decode_classic_token, load_play_keys
from .revocation import load_status_list


def _android_key_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--challenge", required=True, type=hex_bytes, help="expected attestationChallenge (hex)")
    parser.add_argument("--package", help="expected package name in attestationApplicationId")
    parser.add_argument("--signing-digest", action="append", help="registered signing-cert SHA-256 (hex/base64)")
    parser.add_argument("--allow-software", action="store_true", help="accept software-level keys")
    parser.add_argument("--allow-unverified-boot", action="store_true", help="accept SelfSigned/Unverified boot")
    parser.add_argument("--allow-unlocked", action="store_true", help="accept an unlocked bootloader")
    parser.add_argument("--root", action="append", help="PEM file of a trusted root (replaces the configured ones)")
    parser.add_argument("--revocation-list", help="status list JSON file (default: the stored list the server reads)")
    parser.add_argument("--root-validity", choices=["presented", "pinned"], help="how the root certificate is dated")


def _inspect_android_key(payload: bytes, options: argparse.Namespace) -> dict[str, Any]:
    """Decoded but unverified facts, to show what a refused chain carried."""
    certs = chain_steps.parse_chain(payload)
    facts: dict[str, Any] = {"chain_length": len(certs), "chain_serials": [c.serial_hex for c in certs]}
    value = certs[0].extension_value(KEY_DESCRIPTION_OID)
    if value is not None:
        kd = parse_key_description(value)
        rot = kd.first("root_of_trust")
        facts.update(
            attestation_security_level=kd.attestation_security_level,
            keymint_security_level=kd.keymaster_security_level,
            attestation_challenge_hex=kd.attestation_challenge.hex(),
            verified_boot_state=rot.verified_boot_state if rot else None,
            device_locked=rot.device_locked if rot else None,
        )
    return facts


@register(
    "android-key",
    help="Android Key Attestation certificate chain (PEM, leaf first)",
    add_arguments=_android_key_args,
    inspect=_inspect_android_key,
    raw_file=True,
)
def run_android_key(payload: bytes, options: argparse.Namespace, at: dt.datetime) -> dict[str, Any]:
    policy = AndroidKeyPolicy.build(
        package_name=options.package,
        signing_cert_digests=options.signing_digest,
        allow_software=options.allow_software,
        allow_unverified_boot=options.allow_unverified_boot,
        allow_unlocked_bootloader=options.allow_unlocked,
    )
    result = verify_key_attestation(
        payload,
        challenge=options.challenge,
        now=at,
        policy=policy,
        roots=chain_steps.load_roots(options.root) if options.root else None,
        revoked=load_status_list(options.revocation_list) if options.revocation_list else None,
        root_validity=options.root_validity,
    )
    return {**result.facts(), "public_key": result.public_key_pem}


def _play_integrity_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--package", required=True, help="registered package name")
    expected = parser.add_mutually_exclusive_group(required=True)
    expected.add_argument("--nonce", help="expected requestDetails.nonce (classic)")
    expected.add_argument("--request-hash", help="expected requestDetails.requestHash (standard)")
    parser.add_argument("--policy", choices=["strong", "device", "basic"], default="device")
    parser.add_argument("--decryption-key", help="Play Console decryption key (base64): FILE is a classic token")
    parser.add_argument("--verification-key", help="Play Console verification key (base64)")
    parser.add_argument("--max-age", type=int, default=300, help="seconds a verdict may be old (default 300)")
    parser.add_argument("--signing-digest", action="append", help="registered signing-cert SHA-256")
    parser.add_argument("--allow-unrecognized", action="store_true", help="do not require PLAY_RECOGNIZED")
    parser.add_argument("--allow-unlicensed", action="store_true", help="do not require LICENSED")
    parser.add_argument("--allow-testing", action="store_true", help="accept isTestingResponse")
    parser.add_argument("--refuse-apps-detected", default="", help="comma-separated appsDetected values to refuse")


def _verdict_from(payload: bytes, options: argparse.Namespace) -> dict[str, Any]:
    if options.decryption_key or options.verification_key:
        if not (options.decryption_key and options.verification_key):
            raise AttestationError(Reason.MALFORMED_TOKEN, "a token needs both --decryption-key and --verification-key")
        aes, ec_key = load_play_keys(options.decryption_key, options.verification_key)
        return decode_classic_token(payload.decode("ascii", "replace").strip(), aes, ec_key)
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttestationError(Reason.MALFORMED_TOKEN, "FILE is not a verdict JSON (pass keys for a token)") from exc
    if isinstance(document, dict):
        for wrapper in ("tokenPayloadExternal", "verdict"):
            if isinstance(document.get(wrapper), dict):
                return document[wrapper]
        return document
    raise AttestationError(Reason.MALFORMED_TOKEN, "verdict is not a JSON object")


def _integrity_policy(options: argparse.Namespace) -> IntegrityPolicy:
    try:
        digests = tuple(normalise_digest(d) for d in options.signing_digest) if options.signing_digest else None
    except ValueError as exc:
        raise AttestationError(Reason.MALFORMED_BASE64, str(exc)) from exc
    refused = frozenset(v.strip() for v in options.refuse_apps_detected.split(",") if v.strip())
    return IntegrityPolicy(
        package_name=options.package,
        signing_cert_digests=digests,
        min_level=options.policy,
        require_play_recognized=not options.allow_unrecognized,
        require_licensed=not options.allow_unlicensed,
        allow_testing=options.allow_testing,
        max_age=dt.timedelta(seconds=options.max_age),
        refused_apps_detected=refused,
    )


@register(
    "play-integrity",
    help="Play Integrity verdict (decoded JSON) or classic token (with both keys)",
    add_arguments=_play_integrity_args,
    inspect=lambda payload, options: {"verdict": _verdict_from(payload, options)},
    raw_file=True,
)
def run_play_integrity(payload: bytes, options: argparse.Namespace, at: dt.datetime) -> dict[str, Any]:
    verdict = _verdict_from(payload, options)
    kind, expected = ("nonce", options.nonce) if options.nonce is not None else ("request_hash", options.request_hash)
    result = check_verdict(verdict, policy=_integrity_policy(options), expected=expected, kind=kind, now=at)
    return result.facts
