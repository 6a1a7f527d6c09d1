"""`create_user`: create a user with an argon2-hashed password."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create a user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument("--password", required=True)
        parser.add_argument("--skip-password-validation", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if User.objects.filter(username=options["username"]).exists():
            raise CommandError(f"user {options['username']!r} already exists")
        user = User(username=options["username"], email=options["email"])
        if not options["skip_password_validation"]:
            try:
                validate_password(options["password"], user)
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
        user.set_password(options["password"])
        user.save()
        self.stdout.write(f"created user {user.username} (sub {user.get_user_id()})")
