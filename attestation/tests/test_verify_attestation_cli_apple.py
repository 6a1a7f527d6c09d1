"""``manage.py verify_attestation`` over every real App Attest vector, and its error cases."""

from __future__ import annotations

import base64
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from attestation.cli_kinds import load_kinds
from attestation.errors import Reason

from .apple_vectors import AssertionVector, AttestationVector, assertion_vectors, attestation_vectors


def run(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("verify_attestation", *args, stdout=out)
    text = out.getvalue().strip()
    assert text.count("\n") == 0, "prints exactly one JSON object"
    return json.loads(text)


def attestation_args(path: Path, v: AttestationVector, *extra: str) -> list[str]:
    return [
        "apple-attestation", str(path), "--app-id", v.app_id, "--environment", v.environment,
        "--client-data-hash", v.client_data_hash.hex(), "--key-id", base64.b64encode(v.key_id).decode(), *extra,
    ]


@pytest.fixture
def write(tmp_path: Path) -> Any:
    def make(name: str, data: bytes | str) -> Path:
        path = tmp_path / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    return make


@pytest.mark.parametrize("vector", attestation_vectors(), ids=lambda v: v.name)
def test_attestation_vector_valid_at_recorded_time(vector: AttestationVector, write: Any) -> None:
    path = write("att.b64", base64.b64encode(vector.attestation).decode() + "\n")
    result = run(*attestation_args(path, vector, "--at", vector.now.isoformat()))
    assert (result["valid"], result["reason"]) == (True, None)
    assert result["facts"]["key_id"] == base64.b64encode(vector.key_id).decode()
    assert result["facts"]["environment"] == vector.environment
    assert "BEGIN PUBLIC KEY" in result["facts"]["public_key"]


@pytest.mark.parametrize("vector", attestation_vectors(), ids=lambda v: v.name)
def test_attestation_vector_expired_today(vector: AttestationVector, write: Any) -> None:
    path = write("att.bin", vector.attestation)  # raw bytes are accepted too
    result = run(*attestation_args(path, vector))
    assert (result["valid"], result["reason"]) == (False, Reason.CHAIN_EXPIRED)
    assert result["facts"]["leaf_not_after"]  # decoded facts are still shown


@pytest.mark.parametrize("vector", assertion_vectors(), ids=lambda v: v.name)
def test_assertion_vector_valid(vector: AssertionVector, write: Any) -> None:
    path = write("assertion.b64", base64.b64encode(vector.assertion).decode())
    key = write("key.pem", vector.public_key_pem)
    args = ["apple-assertion", str(path), "--app-id", vector.app_id, "--public-key", str(key)]
    result = run(*args, "--previous-counter", "0", "--client-data-hash", vector.client_data_hash.hex())
    assert (result["valid"], result["reason"], result["facts"]["counter"]) == (True, None, 1)
    replay = run(*args, "--previous-counter", "1", "--client-data-hash", vector.client_data_hash.hex())
    assert (replay["valid"], replay["reason"]) == (False, Reason.COUNTER_NOT_INCREASING)


def test_client_data_option_hashes_the_client_data(write: Any) -> None:
    vector = assertion_vectors()[0]
    path = write("assertion.b64", base64.b64encode(vector.assertion).decode())
    key = write("key.pem", vector.public_key_pem)
    result = run(
        "apple-assertion", str(path), "--app-id", vector.app_id, "--public-key", str(key),
        "--client-data", base64.b64encode(b"wurzelpfropf").decode(),
    )
    assert result["valid"] is True


def test_wrong_environment_reason(write: Any) -> None:
    vector = attestation_vectors()[0]
    path = write("att.b64", base64.b64encode(vector.attestation).decode())
    args = attestation_args(path, vector, "--at", vector.now.isoformat())
    args[args.index("--environment") + 1] = "production"
    result = run(*args)
    assert (result["valid"], result["reason"]) == (False, Reason.AAGUID_MISMATCH)


def test_garbage_file_is_a_coded_verdict(write: Any) -> None:
    vector = attestation_vectors()[0]
    result = run(*attestation_args(write("junk", b"\x00\x01garbage\xff"), vector))
    assert (result["valid"], result["reason"]) == (False, Reason.MALFORMED_CBOR)
    assert result["facts"] == {"decode_error": Reason.MALFORMED_CBOR}


def test_at_without_timezone_is_utc(write: Any) -> None:
    vector = next(v for v in attestation_vectors() if v.name == "apple-guide-2026")
    path = write("att.b64", base64.b64encode(vector.attestation).decode())
    assert run(*attestation_args(path, vector, "--at", "2026-04-21T12:00:00"))["valid"] is True


def test_missing_file_is_a_command_error(tmp_path: Path) -> None:
    vector = attestation_vectors()[0]
    with pytest.raises(CommandError):
        run(*attestation_args(tmp_path / "missing", vector))


def test_bad_options_are_usage_errors(write: Any) -> None:
    vector = attestation_vectors()[0]
    path = write("att.b64", "AAAA")
    with pytest.raises(CommandError):
        run(*attestation_args(path, vector, "--at", "yesterday"))
    with pytest.raises(CommandError):
        run("apple-attestation", str(path), "--app-id", "A.b", "--client-data-hash", "zz")


def test_every_kind_is_registered() -> None:
    assert {"apple-attestation", "apple-assertion", "android-key", "play-integrity"} <= set(load_kinds())
