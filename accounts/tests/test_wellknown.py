"""The association files list the apps registered through ``create_client`` (issue 13), not
only those of the environment settings."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import pytest
from django.core.management import call_command

DIGEST = hashlib.sha256(b"app signing certificate").digest()
HEX = DIGEST.hex()
COLON_HEX = ":".join(f"{b:02X}" for b in DIGEST)


def create_client(*args: str) -> None:
    call_command("create_client", "--name", "App", "--public", "--redirect-uri", "com.example.app:/cb", *args,
                 stdout=io.StringIO())


@pytest.mark.django_db
def test_registered_apps_appear_in_both_documents(client: Any) -> None:
    create_client("--android-package", "com.example.app", "--android-cert-digest", HEX,
                  "--ios-app-id", "ABCDE12345.com.example.app")
    links = client.get("/.well-known/assetlinks.json").json()
    assert links == [{
        "relation": ["delegate_permission/common.handle_all_urls", "delegate_permission/common.get_login_creds"],
        "target": {"namespace": "android_app", "package_name": "com.example.app",
                   "sha256_cert_fingerprints": [COLON_HEX]},
    }]
    aasa = client.get("/.well-known/apple-app-site-association").json()
    assert aasa == {"webcredentials": {"apps": ["ABCDE12345.com.example.app"]}}


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", [HEX, COLON_HEX, base64.b64encode(DIGEST).decode(),
                                      base64.urlsafe_b64encode(DIGEST).rstrip(b"=").decode()])
def test_each_documented_digest_spelling_is_accepted(client: Any, spelling: str) -> None:
    from attestation.models import RegisteredApp

    create_client("--android-package", "com.example.app", "--android-cert-digest", spelling)
    assert RegisteredApp.objects.get().android_signing_cert_digests == [base64.b64encode(DIGEST).decode()]
    target = client.get("/.well-known/assetlinks.json").json()[0]["target"]
    assert target["sha256_cert_fingerprints"] == [COLON_HEX]


@pytest.mark.django_db
def test_settings_and_registered_apps_merge_without_duplicates(client: Any, settings: Any) -> None:
    other = hashlib.sha256(b"upload key").hexdigest().upper()
    settings.ACCOUNTS_ASSET_LINKS = [{"package_name": "com.example.app", "sha256_cert_fingerprints": [other]}]
    settings.ACCOUNTS_APPLE_APP_IDS = '["ABCDE12345.com.example.app"]'
    create_client("--android-package", "com.example.app", "--android-cert-digest", HEX,
                  "--ios-app-id", "ABCDE12345.com.example.app")
    links = client.get("/.well-known/assetlinks.json").json()
    assert len(links) == 1 and links[0]["target"]["sha256_cert_fingerprints"] == [other, COLON_HEX]
    aasa = client.get("/.well-known/apple-app-site-association").json()
    assert aasa == {"webcredentials": {"apps": ["ABCDE12345.com.example.app"]}}


@pytest.mark.django_db
def test_inactive_clients_apps_are_not_listed(client: Any) -> None:
    from clients.models import Client

    create_client("--android-package", "com.example.app", "--android-cert-digest", HEX,
                  "--ios-app-id", "ABCDE12345.com.example.app")
    Client.objects.update(is_active=False)
    assert client.get("/.well-known/assetlinks.json").json() == []
    assert client.get("/.well-known/apple-app-site-association").json() == {"webcredentials": {"apps": []}}


def test_help_names_every_digest_spelling() -> None:
    from idp.management.commands.create_client import Command

    parser = Command().create_parser("manage.py", "create_client")
    assert "hex, base64 or base64url" in " ".join(parser.format_help().split())
