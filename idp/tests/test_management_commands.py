"""Operator commands: create_client (incl. attestation options), create_user, bootstrap_demo."""

from __future__ import annotations

import base64
import hashlib
import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from attestation.models import Platform, RegisteredApp
from clients.models import Client

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_confidential_client_json_prints_secret_once():
    result = json.loads(run("create_client", "--name", "Orders API", "--confidential", "--redirect-uri",
                            "https://orders.example.com/cb", "--json"))
    client = Client.objects.get(client_id=result["client_id"])
    assert len(result["client_secret"]) >= 43 and client.check_client_secret(result["client_secret"])
    assert result["client_secret"] not in client.secret_hash
    assert client.token_endpoint_auth_method == "client_secret_basic"


def test_create_public_client_with_ios_and_android_apps():
    digest = base64.b64encode(hashlib.sha256(b"cert").digest()).decode()
    key = base64.b64encode(b"k" * 32).decode()
    result = json.loads(run(
        "create_client", "--name", "App", "--public", "--redirect-uri", "com.example.app:/cb",
        "--redirect-uri", "http://127.0.0.1/cb", "--scope", "openid offline_access", "--first-party",
        "--require-attestation", "--ios-app-id", "ABCDE12345.com.example.app", "--ios-environment", "development",
        "--android-package", "com.example.app", "--android-cert-digest", digest,
        "--play-integrity-decryption-key", key, "--play-integrity-verification-key", key, "--json",
    ))
    assert "client_secret" not in result
    assert result["registered_apps"] == ["ios:ABCDE12345.com.example.app", "android:com.example.app"]
    ios = RegisteredApp.objects.get(platform=Platform.IOS)
    assert ios.app_id == "ABCDE12345.com.example.app" and ios.ios_environment == "development" and ios.require_attestation
    android = RegisteredApp.objects.get(platform=Platform.ANDROID)
    assert android.play_integrity_decryption_key() == b"k" * 32
    assert "k" * 32 not in android.play_integrity_decryption_key_encrypted


@pytest.mark.parametrize(
    "args, message",
    [
        (["--public", "--redirect-uri", "http://evil.example/cb"], "loopback"),
        (["--public", "--redirect-uri", "com.example.app:/cb", "--grant-type", "client_credentials"], "public clients"),
        (["--confidential", "--redirect-uri", "https://x.example/cb", "--require-attestation"], "mobile"),
        (["--public", "--redirect-uri", "com.example.app:/cb", "--ios-app-id", "bad"], "TEAMID"),
        (["--public", "--redirect-uri", "javascript:alert(1)"], "not allowed"),
    ],
)
def test_create_client_refuses_bad_configurations(args, message):
    with pytest.raises(CommandError, match=message):
        run("create_client", "--name", "Bad", *args)
    assert Client.objects.count() == 0


def test_create_user_hashes_with_argon2id():
    run("create_user", "--username", "bob", "--email", "bob@example.com", "--password", "a long enough passphrase")
    user = get_user_model().objects.get(username="bob")
    assert user.password.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    with pytest.raises(CommandError):
        run("create_user", "--username", "carol", "--password", "short")


def test_bootstrap_demo_is_idempotent_and_prints_credentials():
    first = run("bootstrap_demo")
    second = run("bootstrap_demo")
    assert "vigil-demo-password" in first and "client_secret=" in second
    assert Client.objects.filter(client_id__in=["vigil-demo-mobile", "vigil-demo-service"]).count() == 2
    secret = second.split("client_secret=")[1].split()[0]
    assert Client.objects.get(client_id="vigil-demo-service").check_client_secret(secret)
