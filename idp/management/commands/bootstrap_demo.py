"""Create the demo user and clients for `make up` (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a demo user, a public mobile client and a confidential service client."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("Vigil demo bootstrap: nothing yet")
