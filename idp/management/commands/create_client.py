"""`create_client`: register an OAuth client from scripts (prints the secret once)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from attestation.flows.register_apps import AppRegistrationError, register_android_app, register_ios_app
from attestation.grading import GradedFact
from clients.flows.branding import set_logo
from clients.flows.registration import Brand, ClientRegistrationError, register_client
from clients.logo import LogoError
from clients.models import AuthMethod
from core.app_settings import app_settings
from device_health import choices as health_choices
from device_health.models import HealthOutcome

GRADED_FLAGS = {  # --on-<flag> -> the graded fact (device_health.choices)
    "software-key": "software_key",
    "unverified-boot": "boot_not_verified",
    "unlocked-bootloader": "bootloader_unlocked",
    "app-not-recognized": "app_not_recognized",
    "unlicensed": "app_unlicensed",
}


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
        parser.add_argument("--audience", action="append", default=[], dest="audiences",
                            help="A resource (RFC 8707) this client may request tokens for; repeat. The "
                            "userinfo endpoint needs none: any client may ask for it with scope openid.")
        parser.add_argument("--serves-resource", action="append", default=[], dest="served_resources",
                            help="A resource (URI, or a client_id) this confidential client serves: it may "
                            "introspect access tokens whose aud names it (RFC 7662 section 4); repeat. Never "
                            "the issuer or a URL below it (the userinfo endpoint included): Vigil serves those.")
        parser.add_argument("--signing-alg", default=None, choices=["ES256", "RS256", "EdDSA"],
                            help="ID and access token algorithm; default IDP_SIGNING_ALG (RS256).")
        parser.add_argument("--auth-method", action="append", default=[], dest="auth_methods",
                            choices=[m.value for m in AuthMethod],
                            help="Client authentication method; repeat to allow several (the first is the "
                            "registered one). Default: none for --public; client_secret_basic and "
                            "client_secret_post (one secret) for --confidential.")
        parser.add_argument("--jwks-file", default=None, help="Public JWKS for private_key_jwt.")
        parser.add_argument("--no-pkce", action="store_false", dest="require_pkce",
                            help="Confidential OpenID clients only: accept code requests without PKCE when "
                            "they carry a nonce and scope openid (RFC 9700 section 2.1.1). Takes effect "
                            "only with IDP_REQUIRE_PKCE_FOR_ALL_CLIENTS off.")
        parser.add_argument("--backchannel-logout-uri", default="",
                            help="OpenID Connect Back-Channel Logout: where logout tokens are POSTed.")
        parser.add_argument("--backchannel-logout-session-required", action="store_true")
        parser.add_argument("--token-exchange-audience", action="append", default=[], dest="exchange_audiences",
                            help="RFC 8693: an audience this service may exchange user tokens for (repeat). "
                            "The userinfo endpoint, written exactly as discovery publishes it, lets the service "
                            "read /userinfo with exchanged tokens; never its own client_id or another URL of "
                            "the issuer's.")
        parser.add_argument("--require-mfa", action="store_true")
        parser.add_argument("--require-dpop", action="store_true")
        parser.add_argument("--profile", choices=["standard", "fapi2"], default="standard",
                            help="fapi2: the FAPI 2.0 Security Profile (docs/fapi.md).")
        parser.add_argument("--require-par", action="store_true",
                            help="Accept authorization requests only through /par (RFC 9126).")
        parser.add_argument("--request-uri", action="append", default=[], dest="request_uris",
                            help="An https URL of this client's request objects Vigil may fetch (OIDC Core 6.2).")
        parser.add_argument("--require-signed-request-object", action="store_true",
                            help="Accept authorization requests only as signed request objects (RFC 9101).")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        brand = parser.add_argument_group("what people see on the sign-in pages")
        brand.add_argument("--display-name", default="", help='Shown as "Sign in to <display name>"; default --name.')
        brand.add_argument("--logo", default=None, help="PNG, JPEG or WebP file (re-encoded as PNG).")
        brand.add_argument("--privacy-policy-url", default="", help="https URL linked on the sign-in pages.")
        brand.add_argument("--terms-url", default="", help="https URL linked on the sign-in pages.")
        brand.add_argument("--scope-description", action="append", default=[], dest="scope_descriptions",
                           metavar="SCOPE=TEXT", help="What one of the client's own scopes lets it do, as the "
                           "consent page says it (SCOPE@de=TEXT for one language); repeat.")
        attest = parser.add_argument_group("device attestation")
        attest.add_argument("--require-attestation", action="store_true")
        attest.add_argument("--allow-unattested-devices", action="store_true",
                            help="Fallback: devices that cannot attest enroll with their DPoP key only, with "
                            "reduced access (docs/unattested-devices.md). Off by default.")
        attest.add_argument("--on-unattested", default=None, metavar="OUTCOME",
                            help="What such a device earns: allow, reduce (the default), step_up or deny.")
        attest.add_argument("--ios-app-id", help="TEAMID.bundle.id")
        attest.add_argument("--ios-environment", choices=["development", "production"], default="production")
        attest.add_argument("--ios-devicecheck", choices=["off", "optional", "required"], default="off",
                            help="Apple DeviceCheck at iOS enrollment (docs/attestation.md, DeviceCheck).")
        attest.add_argument("--ios-devicecheck-on-failure", choices=["fail_closed", "fail_open"],
                            default="fail_closed", help="When Apple's DeviceCheck API fails: refuse for now "
                            "(503, the default) or enroll with the bits unknown.")
        attest.add_argument("--android-package")
        attest.add_argument("--android-cert-digest", action="append", default=[],
                            help="SHA-256 of the signing certificate: hex, base64 or base64url")
        attest.add_argument("--play-integrity-decryption-key", help="base64, as Play Console shows it")
        attest.add_argument("--play-integrity-verification-key", help="base64, as Play Console shows it")
        attest.add_argument("--min-integrity", choices=["strong", "device", "basic"], default="device")
        attest.add_argument("--play-integrity-max-age-minutes", type=int, default=0)
        graded = parser.add_argument_group(
            "graded trust (Android facts; OUTCOME: allow, reduce, step_up or deny; default: deny, as the verifier "
            "refuses today; docs/device-health.md)")
        for flag, fact in GRADED_FLAGS.items():
            graded.add_argument(f"--on-{flag}", default=None, metavar="OUTCOME", dest=f"on_{fact}",
                                help=f"What a device with this fact earns: {fact.replace('_', ' ')}.")
        graded.add_argument("--on-integrity-below", action="append", default=[], metavar="LEVEL=OUTCOME",
                            help="Play Integrity device recognition below LEVEL (strong, device, basic) earns "
                            "OUTCOME; repeat per level (replaces --min-integrity).")
        graded.add_argument("--reduced-scope", default="", help="Scopes a 'reduce' outcome keeps (space-separated); "
                            "default ATTESTATION_HEALTH_REDUCED_SCOPES.")
        graded.add_argument("--reduced-lifetime", type=int, default=None,
                            help="Access-token seconds of a 'reduce' outcome (at most 300).")

    def handle(self, *args: Any, **options: Any) -> None:
        jwks = None
        if options["jwks_file"]:
            try:
                with open(options["jwks_file"]) as handle:
                    jwks = json.load(handle)
            except (OSError, ValueError) as exc:
                raise CommandError(f"--jwks-file: {exc}") from exc
        brand = self._brand(options)
        logo = self._read(options["logo"]) if options["logo"] else None
        wants_apps = options["ios_app_id"] or options["android_package"]
        if (options["require_attestation"] or wants_apps) and not options["public"]:
            raise CommandError("device attestation is for public (mobile) clients")
        if options["allow_unattested_devices"] and not wants_apps:
            raise CommandError("--allow-unattested-devices needs --ios-app-id and/or --android-package")
        if options["on_unattested"] is not None and not options["allow_unattested_devices"]:
            raise CommandError("--on-unattested needs --allow-unattested-devices")
        unattested = self._unattested_outcome(options)
        if options["require_attestation"] and not wants_apps:
            raise CommandError("--require-attestation needs --ios-app-id and/or --android-package")
        graded = self._graded_choices(options)
        try:
            with transaction.atomic():
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
                    auth_methods=options["auth_methods"] or None,
                    served_resources=options["served_resources"],
                    jwks=jwks,
                    require_mfa=options["require_mfa"],
                    require_dpop=options["require_dpop"],
                    profile=options["profile"],
                    require_par=options["require_par"],
                    require_signed_request_object=options["require_signed_request_object"],
                    request_uris=options["request_uris"],
                    require_pkce=options["require_pkce"],
                    backchannel_logout_uri=options["backchannel_logout_uri"],
                    backchannel_logout_session_required=options["backchannel_logout_session_required"],
                    token_exchange_audiences=options["exchange_audiences"],
                    brand=brand,
                )
                if logo is not None:
                    set_logo(registered.client, logo)
                apps = self._register_apps(registered.client, options)
                if graded or options["reduced_scope"] or options["reduced_lifetime"]:
                    health_choices.choose(registered.client, graded, reduced_scopes=options["reduced_scope"],
                                          reduced_lifetime=options["reduced_lifetime"], actor="create_client")
                if unattested is not None:
                    health_choices.choose_unattested(registered.client, unattested, actor="create_client")
        except (ClientRegistrationError, AppRegistrationError, LogoError) as exc:
            raise CommandError(str(exc)) from exc
        self._print(registered, apps, options["json"])
        if not registered.client.require_pkce and app_settings.REQUIRE_PKCE_FOR_ALL_CLIENTS:
            self.stderr.write("note: IDP_REQUIRE_PKCE_FOR_ALL_CLIENTS is on, so this client still needs PKCE.")

    @staticmethod
    def _unattested_outcome(options: dict[str, Any]) -> HealthOutcome | None:
        if options["on_unattested"] is None:
            return None
        try:
            return health_choices.outcome_of(options["on_unattested"])
        except health_choices.ChoiceError as exc:
            raise CommandError(f"--on-unattested: {exc}") from exc

    @staticmethod
    def _graded_choices(options: dict[str, Any]) -> list[health_choices.FactChoice]:
        """The --on-* flags as choices; they need the Android app whose facts they grade."""
        try:
            found = [
                health_choices.FactChoice(GradedFact(fact), health_choices.outcome_of(options[f"on_{fact}"]))
                for fact in GRADED_FLAGS.values() if options[f"on_{fact}"] is not None
            ]
            found += [health_choices.integrity_choice(v) for v in options["on_integrity_below"]]
        except health_choices.ChoiceError as exc:
            raise CommandError(str(exc)) from exc
        lifetime = options["reduced_lifetime"]
        if lifetime is not None and not 0 < lifetime <= 300:
            raise CommandError("--reduced-lifetime is 1 to 300 seconds")
        if (found or options["reduced_scope"] or lifetime) and not options["android_package"]:
            raise CommandError("--on-*, --reduced-scope and --reduced-lifetime grade Android facts: "
                               "give --android-package")
        return found

    @staticmethod
    def _read(path: str) -> bytes:
        try:
            with open(path, "rb") as handle:
                return handle.read(app_settings.CLIENT_LOGO_MAX_BYTES + 1)
        except OSError as exc:
            raise CommandError(f"--logo: {exc}") from exc

    @staticmethod
    def _brand(options: dict[str, Any]) -> Brand:
        descriptions = {}
        for item in options["scope_descriptions"]:
            scope, sep, text = item.partition("=")
            if not sep or not scope.strip():
                raise CommandError(f"--scope-description {item!r}: write SCOPE=TEXT")
            descriptions[scope.strip()] = text.strip()
        return Brand(display_name=options["display_name"].strip(), privacy_policy_url=options["privacy_policy_url"],
                     terms_url=options["terms_url"], scope_descriptions=descriptions)

    def _register_apps(self, client: Any, options: dict[str, Any]) -> list[str]:
        apps = []
        required, unattested = options["require_attestation"], options["allow_unattested_devices"]
        if options["ios_app_id"]:
            register_ios_app(client, options["ios_app_id"], options["ios_environment"], require_attestation=required,
                             devicecheck=options["ios_devicecheck"],
                             devicecheck_on_failure=options["ios_devicecheck_on_failure"],
                             allow_unattested=unattested)
            apps.append(f"ios:{options['ios_app_id']}")
        if options["android_package"]:
            register_android_app(
                client, options["android_package"], options["android_cert_digest"], require_attestation=required,
                decryption_key_b64=options["play_integrity_decryption_key"],
                verification_key_b64=options["play_integrity_verification_key"],
                min_integrity=options["min_integrity"], max_age_minutes=options["play_integrity_max_age_minutes"],
                allow_unattested=unattested,
            )
            apps.append(f"android:{options['android_package']}")
        return apps

    def _print(self, registered: Any, apps: list[str], as_json: bool) -> None:
        client = registered.client
        result: dict[str, Any] = {
            "client_id": client.client_id,
            "client_type": client.client_type,
            "token_endpoint_auth_method": client.token_endpoint_auth_method,
            "token_endpoint_auth_methods": client.auth_methods(),
            "signing_alg": client.signing_alg,
            "require_pkce": client.require_pkce,
            "redirect_uris": client.redirect_uris,
            "scope": " ".join(client.allowed_scopes),
            "grant_types": client.grant_types,
            "require_dpop": client.require_dpop,
            "profile": client.profile,
        }
        if client.served_resources:
            result["served_resources"] = client.served_resources
        if registered.secret:
            result["client_secret"] = registered.secret
        if apps:
            result["registered_apps"] = apps
        if as_json:
            self.stdout.write(json.dumps(result))
        else:
            for key, value in result.items():
                self.stdout.write(f"{key}: {value}")
