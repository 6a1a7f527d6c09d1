"""Client registration choices: authentication methods (create_client, admin), the per-client
PKCE waiver for confidential OpenID clients (RFC 9700 §2.1.1), the default ID-token algorithm
(RS256, OIDC Dynamic Client Registration §2) and the migration that keeps old clients as
they were."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc import jws

from clients.flows.registration import ClientRegistrationError, register_client
from clients.models import Client
from sessions.models import AuthorizationCode

from .conftest import SERVICE_REDIRECT, exchange, make_pkce, query_of, service_code
from .test_token import basic

pytestmark = pytest.mark.django_db


def run(*args: str) -> dict[str, Any]:
    out, err = StringIO(), StringIO()
    call_command(*args, "--json", stdout=out, stderr=err)
    return json.loads(out.getvalue())


def header_alg(token: str) -> str:
    return jws.extract_compact(token.encode()).protected["alg"]


# --- create_client --auth-method repeats -----------------------------------------------------
def test_create_client_auth_method_repeats_and_prints_the_list():
    result = run("create_client", "--name", "Legacy RP", "--confidential", "--redirect-uri", "https://rp.example/cb",
                 "--auth-method", "client_secret_post", "--auth-method", "client_secret_basic")
    client = Client.objects.get(client_id=result["client_id"])
    assert client.token_endpoint_auth_method == "client_secret_post"
    assert client.auth_methods() == result["token_endpoint_auth_methods"] == ["client_secret_post", "client_secret_basic"]
    assert client.check_client_secret(result["client_secret"])


def test_create_client_default_methods_alg_and_pkce():
    result = run("create_client", "--name", "RP", "--confidential", "--redirect-uri", "https://rp.example/cb")
    assert result["token_endpoint_auth_methods"] == ["client_secret_basic", "client_secret_post"]
    assert result["signing_alg"] == "RS256" and result["require_pkce"] is True
    public = run("create_client", "--name", "App", "--public", "--redirect-uri", "com.example.app:/cb")
    assert public["token_endpoint_auth_methods"] == ["none"] and "client_secret" not in public


def test_create_client_serves_resource_and_no_pkce():
    result = run("create_client", "--name", "RS", "--confidential", "--redirect-uri", "https://rp.example/cb",
                 "--serves-resource", "https://api.example.com", "--no-pkce", "--signing-alg", "ES256")
    client = Client.objects.get(client_id=result["client_id"])
    assert client.served_resources == ["https://api.example.com"] and not client.require_pkce
    assert client.signing_alg == "ES256"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--public", "--redirect-uri", "com.example.app:/cb", "--auth-method", "client_secret_basic"], "public"),
        (["--confidential", "--redirect-uri", "https://x.example/cb", "--auth-method", "private_key_jwt"], "JWKS"),
        (["--public", "--redirect-uri", "com.example.app:/cb", "--no-pkce"], "PKCE"),
        (["--confidential", "--redirect-uri", "https://x.example/cb", "--scope", "orders.read", "--no-pkce"], "OpenID"),
        (["--confidential", "--redirect-uri", "https://x.example/cb", "--jwks-file", "/nonexistent.json"], "jwks-file"),
    ],
)
def test_create_client_refuses_bad_combinations(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_client", "--name", "X", *args, stdout=StringIO())
    assert not Client.objects.exists()


def test_create_client_refuses_unknown_auth_method():
    with pytest.raises(CommandError):
        call_command("create_client", "--name", "X", "--confidential", "--redirect-uri", "https://x.example/cb",
                     "--auth-method", "client_secret_jwt", stdout=StringIO(), stderr=StringIO())
    assert not Client.objects.exists()


# --- admin -------------------------------------------------------------------------------------
@pytest.fixture
def staff(admin_client: Any) -> HttpClient:
    """A superuser signed in with a password and a TOTP code: the admin needs both."""
    return admin_client


def admin_form(client: Client, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "client_id": client.client_id, "name": client.name, "client_type": client.client_type,
        "jwks": json.dumps(client.jwks), "redirect_uris": json.dumps(client.redirect_uris),
        "post_logout_redirect_uris": json.dumps(client.post_logout_redirect_uris),
        "allowed_scopes": json.dumps(client.allowed_scopes), "grant_types": json.dumps(client.grant_types),
        "allowed_audiences": json.dumps(client.allowed_audiences), "served_resources": json.dumps(client.served_resources),
        "signing_alg": client.signing_alg, "is_active": "on", "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
        "auth_methods": client.auth_methods(), "profile": client.profile,
    }
    if client.require_pkce:
        data["require_pkce"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_admin_lists_and_edits_auth_methods(staff, service_client):
    client = service_client.client
    listing = staff.get(reverse("admin:clients_client_changelist"))
    assert listing.status_code == 200 and b"client_secret_basic, client_secret_post" in listing.content
    url = reverse("admin:clients_client_change", args=[client.pk])
    page = staff.get(url)
    assert page.status_code == 200 and b'name="auth_methods"' in page.content
    response = staff.post(url, admin_form(client, auth_methods=["client_secret_post"]))
    assert response.status_code == 302, response.content.decode()[:2000]
    client.refresh_from_db()
    assert client.token_endpoint_auth_method == "client_secret_post" and client.additional_auth_methods == []


@pytest.mark.parametrize(
    "changes, field_error",
    [
        ({"auth_methods": ["none"]}, "public clients"),
        ({"auth_methods": ["private_key_jwt"]}, "JWKS"),
        ({"require_pkce": None, "allowed_scopes": json.dumps(["orders.read"])}, "OpenID"),
        ({"served_resources": json.dumps(["a b"])}, "served resource"),
    ],
)
def test_admin_refuses_bad_client_configurations(staff, service_client, changes, field_error):
    client = service_client.client
    response = staff.post(reverse("admin:clients_client_change", args=[client.pk]), admin_form(client, **changes))
    assert response.status_code == 200 and field_error in response.content.decode()
    client.refresh_from_db()
    assert client.auth_methods() == ["client_secret_basic", "client_secret_post"] and client.require_pkce


# --- PKCE waiver (RFC 9700 §2.1.1) -------------------------------------------------------------
@pytest.fixture
def nonce_client(db: Any) -> Any:
    return register_client(name="Nonce RP", public=False, redirect_uris=[SERVICE_REDIRECT], require_pkce=False,
                           scopes=["openid", "profile", "offline_access"])


def no_pkce(**extra: Any) -> dict[str, Any]:
    return {"code_challenge": None, "code_challenge_method": None, **extra}


def authorize_without_pkce(browser: Any, client_id: str, **extra: Any) -> dict[str, str]:
    from urllib.parse import urlencode

    from .conftest import authorize_params

    params = authorize_params(client_id, make_pkce(), redirect_uri=SERVICE_REDIRECT, **no_pkce(**extra))
    response = browser.post(f"{reverse('authorize')}?{urlencode(params)}", {"decision": "allow"})
    assert response.status_code == 302, response.content
    return query_of(response["Location"])


def test_waiver_has_no_effect_while_pkce_is_required_for_all(browser, nonce_client):
    query = authorize_without_pkce(browser, nonce_client.client.client_id)
    assert query["error"] == "invalid_request" and "PKCE is required" in query["error_description"]
    assert not AuthorizationCode.objects.exists()


def test_confidential_oidc_client_without_pkce_uses_nonce(browser, nonce_client, settings):
    settings.IDP_REQUIRE_PKCE_FOR_ALL_CLIENTS = False
    client_id, secret = nonce_client.client.client_id, nonce_client.secret
    query = authorize_without_pkce(browser, client_id, nonce="n-0123456789")
    assert "code" in query, query
    data = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": SERVICE_REDIRECT}
    from .conftest import form_post

    response = form_post(HttpClient(), reverse("token"), data, HTTP_AUTHORIZATION=basic(client_id, secret))
    assert response.status_code == 200, response.content
    from core import jwt_tokens

    claims = jwt_tokens.verify(response.json()["id_token"], typ=None)
    assert claims["nonce"] == "n-0123456789"


@pytest.mark.parametrize("extra", [{"nonce": None}, {"scope": "profile offline_access"}])
def test_without_pkce_a_nonce_and_openid_are_required(browser, nonce_client, settings, extra):
    settings.IDP_REQUIRE_PKCE_FOR_ALL_CLIENTS = False
    query = authorize_without_pkce(browser, nonce_client.client.client_id, **extra)
    assert query["error"] == "invalid_request" and "nonce" in query["error_description"]
    assert not AuthorizationCode.objects.exists()


def test_clients_that_keep_pkce_still_need_it_when_the_global_lock_is_off(browser, service_client, settings):
    settings.IDP_REQUIRE_PKCE_FOR_ALL_CLIENTS = False
    query = authorize_without_pkce(browser, service_client.client.client_id)
    assert query["error"] == "invalid_request" and "PKCE is required" in query["error_description"]


def test_public_and_non_openid_clients_cannot_waive_pkce(db):
    with pytest.raises(ClientRegistrationError, match="public clients always use PKCE"):
        register_client(name="App", public=True, redirect_uris=["com.example.app:/cb"], require_pkce=False)
    with pytest.raises(ClientRegistrationError, match="OpenID"):
        register_client(name="API", public=False, redirect_uris=["https://x.example/cb"], scopes=["orders.read"],
                        require_pkce=False)


def test_a_public_client_cannot_be_registered_with_exchange_audiences(db):
    """As the admin refuses it: only a confidential client exchanges tokens (RFC 8693)."""
    from clients.models import Client

    with pytest.raises(ClientRegistrationError, match="only confidential clients exchange tokens"):
        register_client(name="App", public=True, redirect_uris=["com.example.app:/cb"],
                        token_exchange_audiences=["https://api.example.com"])
    assert not Client.objects.exists()


# --- default signing algorithm ---------------------------------------------------------------
def test_new_client_signs_with_rs256_by_default(browser, service_client):
    client_id = service_client.client.client_id
    pkce = make_pkce()
    code, _ = service_code(browser, client_id, pkce)
    body = exchange(HttpClient(), code, pkce, client_id, redirect_uri=SERVICE_REDIRECT,
                    HTTP_AUTHORIZATION=basic(client_id, service_client.secret)).json()
    assert header_alg(body["id_token"]) == header_alg(body["access_token"]) == "RS256"


def test_default_alg_follows_the_setting_and_explicit_choice_wins(settings, db):
    settings.IDP_SIGNING_ALG = "ES256"
    assert register_client(name="A", public=True, redirect_uris=["com.a:/cb"]).client.signing_alg == "ES256"
    assert Client(name="admin-made").signing_alg == "ES256"
    explicit = register_client(name="B", public=True, redirect_uris=["com.b:/cb"], signing_alg="EdDSA").client
    assert explicit.signing_alg == "EdDSA"


# --- the migration keeps existing clients as they were ---------------------------------------
@pytest.mark.django_db(transaction=True)
def test_migration_keeps_existing_algorithms_and_methods():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("idp", "0005_one_active_key_per_alg")], [("idp", "0006_client_auth_methods")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("idp", "Client")
    old.objects.create(client_id="old-es", name="Old", client_type="confidential",
                       token_endpoint_auth_method="client_secret_basic", signing_alg="ES256", allowed_scopes=[],
                       grant_types=[])
    old.objects.create(client_id="old-default", name="Old 2", client_type="public", token_endpoint_auth_method="none",
                       allowed_scopes=[], grant_types=[])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    new = executor.loader.project_state(after).apps.get_model("idp", "Client")
    es = new.objects.get(client_id="old-es")
    assert es.signing_alg == "ES256" and es.additional_auth_methods == [] and es.served_resources == []
    assert es.token_endpoint_auth_method == "client_secret_basic"
    assert new.objects.get(client_id="old-default").signing_alg == "ES256"  # 0001's default, kept
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


# --- the README's create_client usage is the command's --------------------------------------
def test_readme_create_client_usage_lists_exactly_the_commands_options():
    """README "Operating it" shows every create_client option and no other."""
    import re
    from pathlib import Path

    from idp.management.commands.create_client import Command

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    usage = re.search(r"manage\.py create_client (.*?)\n\.venv", readme, re.DOTALL)
    assert usage, "README lost its create_client usage line"
    shown = set(re.findall(r"--[a-z][a-z0-9-]*", usage.group(1)))
    parser = Command().create_parser("manage.py", "create_client")
    common = {"--help", "--version", "--verbosity", "--settings", "--pythonpath", "--traceback", "--no-color",
              "--force-color", "--skip-checks"}
    options = {o for action in parser._actions for o in action.option_strings if o.startswith("--")} - common
    assert shown == options, f"README only: {shown - options}; command only: {options - shown}"
