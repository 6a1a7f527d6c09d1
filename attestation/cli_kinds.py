"""Kinds of ``manage.py verify_attestation``: a registry of per-kind verifiers.

A kind is a function ``run(payload: bytes, options: Namespace, at: datetime) -> dict`` that
returns the parsed facts of a valid input or raises ``AttestationError``, plus a function
that adds its options to the kind's sub-parser. Register with ``@register(...)``.

Apple kinds live here. Android kinds (``android-key``, ``play-integrity``) are registered by
``attestation/android/cli.py`` (imported by ``load_kinds()``); until that module registers
them, stubs answer ``{"valid": false, "reason": "unsupported_format"}``.
"""

from __future__ import annotations

import argparse
import binascii
import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .apple.assertion import verify_assertion
from .apple.attestation import AAGUIDS, inspect_attestation, verify_attestation
from .encoding import b64decode_any
from .errors import AttestationError, Reason
from .x509chain import load_pem_files

Runner = Callable[[bytes, argparse.Namespace, datetime], dict[str, Any]]
ArgumentAdder = Callable[[argparse.ArgumentParser], None]
Inspector = Callable[[bytes, argparse.Namespace], dict[str, Any]]


@dataclass(frozen=True)
class Kind:
    name: str
    help: str
    add_arguments: ArgumentAdder
    run: Runner
    inspect: Inspector | None = None
    raw_file: bool = False  # True: FILE is passed as read (e.g. PEM chains); False: base64 text or raw bytes


REGISTRY: dict[str, Kind] = {}
ANDROID_KINDS = ("android-key", "play-integrity")
ANDROID_CLI_MODULE = "attestation.android.cli"


def register(
    name: str, *, help: str, add_arguments: ArgumentAdder, inspect: Inspector | None = None, raw_file: bool = False
) -> Callable[[Runner], Runner]:
    """Decorator: register ``run`` as the verifier of kind ``name`` (a later registration wins)."""

    def decorator(run: Runner) -> Runner:
        REGISTRY[name] = Kind(name, help, add_arguments, run, inspect, raw_file)
        return run

    return decorator


def load_kinds() -> dict[str, Kind]:
    """Every kind: Apple's (this module), Android's (``attestation/android/cli.py``) or their stubs."""
    try:
        importlib.import_module(ANDROID_CLI_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != ANDROID_CLI_MODULE:
            raise
    for name in ANDROID_KINDS:
        if name not in REGISTRY:
            register(name, help=f"{name} (not available in this build)", add_arguments=_no_arguments, raw_file=True)(
                _not_implemented
            )
    return REGISTRY


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    return None


def _not_implemented(payload: bytes, options: argparse.Namespace, at: datetime) -> dict[str, Any]:
    raise AttestationError(Reason.UNSUPPORTED_FORMAT, "this kind is not implemented")


# ---------------------------------------------------------------------- helpers
def decode_payload(raw: bytes) -> bytes:
    """FILE holds base64/base64url text or raw bytes: decode text that is valid base64."""
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return raw
    if not text:
        raise AttestationError(Reason.MALFORMED_BASE64, "empty input")
    try:
        return b64decode_any(text)
    except AttestationError:
        return raw


def hex_bytes(value: str) -> bytes:
    try:
        return binascii.unhexlify(value.strip())
    except (binascii.Error, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"not hex: {exc}") from exc


def b64_bytes(value: str) -> bytes:
    try:
        return b64decode_any(value)
    except AttestationError as exc:
        raise argparse.ArgumentTypeError("not base64") from exc


def _client_data_hash(options: argparse.Namespace) -> bytes:
    if options.client_data is not None:
        return hashlib.sha256(options.client_data).digest()
    return bytes(options.client_data_hash)


def _add_client_data(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--client-data-hash", type=hex_bytes, help="clientDataHash as hex (used as is)")
    group.add_argument("--client-data", type=b64_bytes, help="clientData as base64; its SHA-256 is used")


# ---------------------------------------------------------------------- Apple
def _apple_attestation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-id", required=True, help="TEAMID.bundle.id")
    parser.add_argument("--environment", choices=sorted(AAGUIDS), default="production")
    _add_client_data(parser)
    parser.add_argument("--key-id", type=b64_bytes, help="key identifier the app sent (base64)")
    parser.add_argument("--root", action="append", help="PEM file of a trusted root (replaces the configured ones)")


@register(
    "apple-attestation",
    help="App Attest attestation object (CBOR)",
    add_arguments=_apple_attestation_args,
    inspect=lambda payload, options: inspect_attestation(payload),
)
def run_apple_attestation(payload: bytes, options: argparse.Namespace, at: datetime) -> dict[str, Any]:
    result = verify_attestation(
        payload,
        app_id=options.app_id,
        environment=options.environment,
        client_data_hash=_client_data_hash(options),
        now=at,
        key_id=options.key_id,
        roots=load_pem_files(options.root) if options.root else None,
    )
    return {**result.facts, "app_id": result.app_id, "public_key": result.public_key_pem}


def _apple_assertion_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-id", required=True, help="TEAMID.bundle.id")
    parser.add_argument("--public-key", required=True, type=Path, help="PEM file of the attested key")
    parser.add_argument("--previous-counter", type=int, default=0)
    _add_client_data(parser)


@register("apple-assertion", help="App Attest assertion (CBOR)", add_arguments=_apple_assertion_args)
def run_apple_assertion(payload: bytes, options: argparse.Namespace, at: datetime) -> dict[str, Any]:
    result = verify_assertion(
        payload,
        public_key=options.public_key.read_bytes(),
        app_id=options.app_id,
        client_data_hash=_client_data_hash(options),
        previous_counter=options.previous_counter,
    )
    return {**result.facts(), "app_id": options.app_id}
