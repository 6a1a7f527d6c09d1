"""``manage.py verify_attestation KIND FILE [options] [--at ISO8601]``: offline check of captured data.

Prints ONE JSON object: ``{"kind", "valid", "reason", "detail", "at", "facts"}``; ``reason``
is the stable ``Reason`` code (null when valid); ``facts`` are the verified facts, or the
decoded-but-unverified ones when the input was invalid and could be decoded. FILE holds
base64 text or raw bytes (PEM for chains). The exit status is 0 when a verdict was printed;
read ``valid``. Kinds are dispatched through ``attestation.cli_kinds``.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from attestation.cli_kinds import Kind, decode_payload, load_kinds
from attestation.errors import AttestationError


def parse_at(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not ISO 8601: {value}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Verify captured attestation data offline and print one JSON verdict."

    def add_arguments(self, parser: CommandParser) -> None:
        subparsers = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
        for kind in load_kinds().values():
            sub = subparsers.add_parser(kind.name, help=kind.help)
            sub.add_argument("file", metavar="FILE", type=Path)
            sub.add_argument("--at", type=parse_at, help="verification time (ISO 8601); default now")
            kind.add_arguments(sub)

    def handle(self, *args: Any, **options: Any) -> None:
        kind = load_kinds()[options["kind"]]
        namespace = argparse.Namespace(**options)
        at = options.get("at") or datetime.now(UTC)
        try:
            raw = options["file"].read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {options['file']}: {exc}") from exc
        verdict = self.verdict(kind, raw, namespace, at)
        self.stdout.write(json.dumps(verdict, sort_keys=True, default=str))

    @staticmethod
    def verdict(kind: Kind, raw: bytes, options: argparse.Namespace, at: datetime) -> dict[str, Any]:
        result: dict[str, Any] = {"kind": kind.name, "at": at.isoformat(), "valid": False, "reason": None}
        try:
            payload = raw if kind.raw_file else decode_payload(raw)
            result["facts"] = kind.run(payload, options, at)
            result.update(valid=True, detail="")
        except AttestationError as exc:
            result.update(reason=exc.reason, detail=exc.detail, facts=_inspect(kind, raw, options))
        return result


def _inspect(kind: Kind, raw: bytes, options: argparse.Namespace) -> dict[str, Any]:
    if kind.inspect is None:
        return {}
    try:
        return kind.inspect(raw if kind.raw_file else decode_payload(raw), options)
    except AttestationError as exc:
        return {"decode_error": exc.reason}
