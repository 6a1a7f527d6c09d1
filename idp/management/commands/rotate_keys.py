"""`rotate_keys`: publish a new signing key per algorithm (it signs after the publish-ahead
delay, or at once with --now, which also withdraws keys still waiting to sign); retiring
keys stay in the JWKS until their tokens expire."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core import keys
from core.app_settings import app_settings
from core.events import EventType, record


class Command(BaseCommand):
    help = "Rotate the signing keys."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--alg", action="append", default=[], help="Only these algorithms.")
        parser.add_argument("--now", action="store_true",
                            help="Start signing with the new key immediately; withdraw keys still waiting to sign.")

    def handle(self, *args: Any, **options: Any) -> None:
        for alg in options["alg"] or app_settings.SUPPORTED_SIGNING_ALGS:
            keys.active_key(alg)
            key, withdrawn = keys.rotate_now(alg) if options["now"] else (keys.rotate(alg), [])
            record(EventType.KEYS_ROTATED, alg=alg, kid=key.kid, immediately=options["now"], withdrawn=withdrawn)
            self.stdout.write(f"{alg}: new key {key.kid} ({key.status}, signs from {key.activates_at.isoformat()})")
            for kid in withdrawn:
                self.stdout.write(f"{alg}: withdrew {kid}, which was waiting to sign")
