"""`create_client`: register an OAuth client from scripts (prints the secret once)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from idp.flows.clients import ClientRegistrationError, register_client


class Command(BaseCommand):
    help = "Register an OAuth client. Confidential clients get a secret, shown only once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--redirect-uri", action="append", default=[], dest="redirect_uris")
        parser.add_argument("--post-logout-redirect-uri", action="append", default=[], dest="post_logout")
        kind = parser.add_mutually_exclusive_group(required=True)
        kind.add_argument("--public", action="store_true")
        kind.add_argument("--confidential", action="store_true")
        parser.add_argument("--scope", default="openid profile email offline_access")
        parser.add_argument("--grant-type", action="append", default=[], dest="grant_types")
        parser.add_argument("--first-party", action="store_true")
        parser.add_argument("--client-id", default=None)
        parser.add_argument("--audience", action="append", default=[], dest="audiences")
        parser.add_argument("--signing-alg", default="ES256", choices=["ES256", "RS256", "EdDSA"])
        parser.add_argument("--auth-method", default=None)
        parser.add_argument("--jwks-file", default=None, help="Public JWKS for private_key_jwt.")
        parser.add_argument("--require-mfa", action="store_true")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        jwks = None
        if options["jwks_file"]:
            with open(options["jwks_file"]) as handle:
                jwks = json.load(handle)
        try:
            registered = register_client(
                name=options["name"],
                public=options["public"],
                redirect_uris=options["redirect_uris"],
                post_logout_redirect_uris=options["post_logout"],
                scopes=options["scope"].split(),
                grant_types=options["grant_types"] or None,
                first_party=options["first_party"],
                client_id=options["client_id"],
                allowed_audiences=options["audiences"],
                signing_alg=options["signing_alg"],
                auth_method=options["auth_method"],
                jwks=jwks,
                require_mfa=options["require_mfa"],
            )
        except ClientRegistrationError as exc:
            raise CommandError(str(exc)) from exc
        client = registered.client
        result = {
            "client_id": client.client_id,
            "client_type": client.client_type,
            "token_endpoint_auth_method": client.token_endpoint_auth_method,
            "redirect_uris": client.redirect_uris,
            "scope": " ".join(client.allowed_scopes),
            "grant_types": client.grant_types,
        }
        if registered.secret:
            result["client_secret"] = registered.secret
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            for key, value in result.items():
                self.stdout.write(f"{key}: {value}")
