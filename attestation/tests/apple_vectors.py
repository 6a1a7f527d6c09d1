"""Loader of the real App Attest vectors copied into ``tests/vectors/appattest/`` (see its README)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

VECTORS = Path(__file__).resolve().parent / "vectors" / "appattest"
UEBELACK_APP_ID = "V8H6LQ9448.io.uebelacker.AppAttestExample"
UEBELACK_NOW = {"development": "2024-02-04T00:00:00Z", "production": "2024-02-07T00:00:00Z"}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class AttestationVector:
    name: str
    attestation: bytes
    app_id: str
    environment: str
    client_data_hash: bytes
    key_id: bytes
    now: datetime


@dataclass(frozen=True)
class AssertionVector:
    name: str
    assertion: bytes
    app_id: str
    public_key_pem: str
    client_data_hash: bytes
    counter: int


def _veehaitch() -> list[dict]:
    return [
        {"name": path.stem, "docs": list(yaml.safe_load_all(path.read_text()))}
        for path in sorted(VECTORS.glob("veehaitch-*.yaml"))
    ]


def attestation_vectors() -> list[AttestationVector]:
    vectors = []
    for item in _veehaitch():
        doc = next(d for d in item["docs"] if d["type"] == "attestation")
        vectors.append(
            AttestationVector(
                name=item["name"],
                attestation=base64.b64decode(doc["attestationBase64"]),
                app_id=f"{doc['teamIdentifier']}.{doc['bundleIdentifier']}",
                environment=doc["environment"],
                client_data_hash=hashlib.sha256(base64.b64decode(doc["clientDataBase64"])).digest(),
                key_id=base64.b64decode(doc["keyIdBase64"]),
                now=parse_time(doc["timestamp"]),
            )
        )
    for env in ("development", "production"):
        doc = json.loads((VECTORS / f"uebelack-attestation-{env}.json").read_text())
        vectors.append(
            AttestationVector(
                name=f"uebelack-{env}",
                attestation=base64.b64decode(doc["attestation"]),
                app_id=UEBELACK_APP_ID,
                environment=env,
                client_data_hash=hashlib.sha256(base64.b64decode(doc["challenge"])).digest(),
                key_id=base64.b64decode(doc["keyId"]),
                now=parse_time(UEBELACK_NOW[env]),
            )
        )
    doc = json.loads((VECTORS / "apple-guide-2026-attestation.json").read_text())
    vectors.append(
        AttestationVector(
            name="apple-guide-2026",
            attestation=base64.b64decode(doc["attestationBase64"]),
            app_id=doc["appId"],
            environment=doc["environment"],
            client_data_hash=base64.b64decode(doc["clientDataHashBase64"]),
            key_id=base64.b64decode(doc["keyIdBase64"]),
            now=parse_time(doc["fixedNow"]),
        )
    )
    return vectors


def assertion_vectors() -> list[AssertionVector]:
    vectors = []
    for item in _veehaitch():
        doc = next(d for d in item["docs"] if d["type"] == "assertion")
        vectors.append(
            AssertionVector(
                name=item["name"],
                assertion=base64.b64decode(doc["assertionBase64"]),
                app_id=f"{doc['teamIdentifier']}.{doc['bundleIdentifier']}",
                public_key_pem=doc["publicKey"],
                client_data_hash=hashlib.sha256(base64.b64decode(doc["clientDataBase64"])).digest(),
                counter=int(doc["counter"]),
            )
        )
    return vectors
