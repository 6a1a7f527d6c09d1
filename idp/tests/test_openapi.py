"""The committed OpenAPI schema (docs/openapi.yaml) is what the code generates."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def test_committed_schema_is_current():
    out = StringIO()
    call_command("spectacular", stdout=out)
    assert out.getvalue().strip() == SCHEMA.read_text().strip(), (
        "regenerate with: python manage.py spectacular --file docs/openapi.yaml"
    )


@pytest.mark.django_db
def test_schema_is_served(client):
    response = client.get(reverse("openapi-schema"))
    assert response.status_code == 200 and b"/attestation/challenge" in response.content


# Routes the schema leaves out, each for a reason (docs/openapi.yaml says so in info.description).
BROWSER_ONLY_PREFIXES = {
    "/accounts/": "sign-in, passkey/TOTP ceremonies and account pages: HTML (and their own pages' "
    "fetch calls) inside a browser session with CSRF, never called by a client or service",
    "/admin/": "the staff admin (HTML)",
}
# The operations endpoints serve the platform (probes, Prometheus), not clients: docs/operations.md.
OPERATIONS_ROUTES = {"/healthz", "/readyz", "/metrics"}


def _routes(patterns: list, prefix: str = "/") -> list[str]:
    """Every concrete route of the URLconf as an OpenAPI path template."""
    from django.urls import URLPattern, URLResolver

    found: list[str] = []
    for pattern in patterns:
        route = str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found.extend(_routes(pattern.url_patterns, prefix + route))
        elif isinstance(pattern, URLPattern):
            found.append(prefix + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return found


def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def test_every_client_facing_route_is_described():
    from django.urls import get_resolver

    routes = _routes(get_resolver().url_patterns)
    assert "/token" in routes and "/ssf/receive/{slug}" in routes  # the walk sees nested includes
    described = set(_schema()["paths"])
    missing = [r for r in routes if not r.startswith(tuple(BROWSER_ONLY_PREFIXES)) and r not in described]
    assert missing == sorted(OPERATIONS_ROUTES, key=routes.index)
    assert "`/healthz`, `/readyz`, `/metrics`" in _schema()["info"]["description"]


def test_every_described_path_resolves_to_its_view():
    from django.urls import Resolver404, resolve

    unresolved = []
    for path in _schema()["paths"]:
        try:
            resolve(re.sub(r"\{\w+\}", "x", path))
        except Resolver404:
            unresolved.append(path)
    assert unresolved == []


def test_the_exclusions_are_only_html_pages_and_the_admin():
    from django.urls import get_resolver

    excluded = {r for r in _routes(get_resolver().url_patterns) if r.startswith(tuple(BROWSER_ONLY_PREFIXES))}
    assert excluded and all(r.startswith(("/accounts/", "/admin/")) for r in excluded)
    assert "browser-only HTML pages" in _schema()["info"]["description"]


def test_each_grant_and_client_auth_method_is_described():
    schema = _schema()
    grants = {
        name: part["properties"]["grant_type"]["enum"][0]
        for name in ("AuthorizationCodeTokenRequest", "RefreshTokenRequest", "ClientCredentialsTokenRequest")
        for part in schema["components"]["schemas"][name]["allOf"]
        if "properties" in part and "grant_type" in part["properties"]
    }
    assert set(grants.values()) == {"authorization_code", "refresh_token", "client_credentials"}
    client_auth = schema["components"]["schemas"]["ClientAuthentication"]["properties"]
    assert {"client_id", "client_secret", "client_assertion_type", "client_assertion"} <= set(client_auth)
    schemes = schema["components"]["securitySchemes"]
    assert schemes["client_secret_basic"]["scheme"] == "basic" and schemes["dpop"]["scheme"] == "dpop"
    assert schema["paths"]["/userinfo"]["post"]["security"] == [{"bearer": []}, {"dpop": []}]


# Documents built from settings alone: they answer while storage is down.
STATIC_DOCUMENTS = {"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server",
                    "/.well-known/ssf-configuration", "/.well-known/assetlinks.json",
                    "/.well-known/apple-app-site-association", "/api/schema"}


def _operations():
    for path, item in _schema()["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_declares_its_security():
    assert [(p, m) for p, m, op in _operations() if "security" not in op] == []


def test_every_endpoint_that_needs_storage_documents_the_outage_answer():
    schema = _schema()
    missing = [(p, m) for p, m, op in _operations() if p not in STATIC_DOCUMENTS and "503" not in op["responses"]]
    assert missing == []
    outage = schema["components"]["responses"]["TemporarilyUnavailable"]
    assert outage["headers"]["Retry-After"]["$ref"].endswith("/RetryAfter")
    assert schema["components"]["headers"]["RetryAfter"]["required"] is True
