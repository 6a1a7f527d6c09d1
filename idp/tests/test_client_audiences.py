"""What a client's audiences may name (``clients.audiences``), wherever a client is written:
``register_client``, ``create_client``, the admin, ``save()`` and the bulk writes; check
``clients.W003`` over rows written behind them; and the uses (introspection, token exchange)
that ignore such a row's values meanwhile.

Attacks: a client registered to serve the userinfo endpoint introspects and exchanges every
user's token narrowed to it, whichever client it was issued to; a service allowed to exchange
for its own client_id mints tokens /userinfo takes as its own, although no administrator
listed the userinfo endpoint. Each is refused with nothing stored, and a row written behind
the rules grants neither."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import Warning
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client as HttpClient
from django.urls import reverse

from clients.checks import check_client_audiences
from clients.flows.registration import ClientRegistrationError, RegisteredClient, register_client
from clients.models import Client
from core import config_cache
from core.events import EventType
from core.issuer_urls import userinfo_endpoint, within_issuer
from core.models import SecurityEvent
from sessions.models import AccessToken

from .conftest import MOBILE_CLIENT_ID, SERVICE_REDIRECT
from .test_client_registration import admin_form, staff  # noqa: F401 (fixture)
from .test_introspection_revocation_userinfo import introspect
from .test_token_exchange import ORDERS, _exchange, backend  # noqa: F401 (fixture)
from .test_userinfo_audience import tokens_for, userinfo

pytestmark = pytest.mark.django_db

ISSUER = settings.IDP_ISSUER  # http://localhost:8000 in tests
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def vigils_own() -> list[str]:
    """Vigil's own URLs, as written and spelled otherwise (RFC 3986 §6.2.2-3)."""
    return [userinfo_endpoint(), ISSUER, f"{ISSUER}/", f"{ISSUER}/token", f"{ISSUER}/introspect",
            f"{ISSUER}/userinfo/", ISSUER.replace("localhost", "LOCALHOST") + "/userinfo",
            ISSUER.replace("http://", "HTTP://") + "/%75serinfo"]


def register(**fields: Any) -> RegisteredClient:
    return register_client(name="Service", public=False, redirect_uris=[SERVICE_REDIRECT],
                           grant_types=["authorization_code", EXCHANGE], **{"client_id": "svc", **fields})


def write_behind_validation(client: Client, **columns: Any) -> None:
    """Raw SQL: what a data migration, a database console or an older release may have written
    (announced as core.config_cache asks of raw SQL, so this process reads the row again)."""
    with connection.cursor() as cursor:
        for column, value in columns.items():
            cursor.execute(f"UPDATE idp_client SET {column} = %s WHERE id = %s",  # noqa: S608 (names are ours)
                           [json.dumps(value) if isinstance(value, list | dict) else value, client.pk])
    config_cache.changed()


def stored() -> list[tuple[Any, ...]]:
    return list(Client.objects.order_by("pk").values_list("client_id", "served_resources",
                                                          "token_exchange_audiences"))


# --- what is refused, and what is not -----------------------------------------------------------
@pytest.mark.parametrize("value", vigils_own())
def test_vigils_own_urls_are_served_by_no_client(value: str) -> None:
    with pytest.raises(ClientRegistrationError, match="Vigil's own URLs.*Vigil alone serves them"):
        register(served_resources=["https://api.example.com", value])
    assert not Client.objects.exists()


@pytest.mark.parametrize(("audience", "says"), [
    ("svc", "own client_id: /userinfo would take"),
    (f"{ISSUER}/token", "written exactly"),
    (ISSUER, "written exactly"),
    (f"{ISSUER}/userinfo/", "written exactly"),  # /userinfo compares exactly: it would never take it
])
def test_exchange_audiences_refused(audience: str, says: str) -> None:
    with pytest.raises(ClientRegistrationError, match=says):
        register(token_exchange_audiences=[ORDERS, audience])
    assert not Client.objects.exists()


def test_a_client_id_is_none_of_vigils_urls() -> None:
    with pytest.raises(ClientRegistrationError, match="a client_id is an audience"):
        register(client_id=userinfo_endpoint())
    assert not Client.objects.exists()


def test_another_clients_id_and_the_userinfo_endpoint_stay_allowed(mobile_client: RegisteredClient) -> None:
    """The app's backend serves the app's client_id; a service exchanges for another service by
    its client_id, and for the userinfo endpoint when an administrator lists it."""
    other = register_client(name="Orders", public=False, redirect_uris=[], grant_types=["client_credentials"],
                            client_id="orders-svc").client
    service = register(served_resources=[MOBILE_CLIENT_ID, "https://api.example.com", "https://id.example.org/x"],
                       token_exchange_audiences=[userinfo_endpoint(), other.client_id, ORDERS]).client
    service.refresh_from_db()
    assert service.served_resources == [MOBILE_CLIENT_ID, "https://api.example.com", "https://id.example.org/x"]
    assert service.token_exchange_audiences == [userinfo_endpoint(), "orders-svc", ORDERS]
    assert check_client_audiences(databases=["default"]) == []


@pytest.mark.parametrize(("value", "within"), [
    ("https://id.example.com/idp", True), ("https://id.example.com/idp/", True),
    ("https://id.example.com/idp/userinfo", True), ("https://ID.example.com:443/idp/token", True),
    ("https://id.example.com/%69dp/userinfo", True), ("https://id.example.com./idp", True),
    ("https://id.example.com/api", False), ("https://id.example.com/idpx", False),
    ("http://id.example.com/idp/userinfo", False), ("https://id.example.com:8443/idp", False),
    ("https://api.example.com/idp", False), ("id.example.com/idp", False), ("mobile-app", False),
    ("https://id.example.com:99999/idp", False), ("", False),
    # as a browser reaches it (WHATWG URL): IDNA forms of the host, \\ for /, dot segments
    ("https://\uff29\uff24.example.com/idp/userinfo", True), ("https://id.example.com\u3002/idp", True),
    ("https://%69d.example.com/idp", True), ("https://id.example.com\\idp\\userinfo", True),
    ("https://id.example.com/api/../idp/userinfo", True), ("https://id.example.com/%2e%2e/idp/token", True),
    ("https://id.example.com/idp/../api", False), ("https://id.example.com/idp/%2E%2E/api", False),
    ("https://id.example.com@evil.example/idp", False), ("https://id.example.com.evil.example/idp", False),
    ("https://\u0131d.example.com/idp", False),  # a dotless i is another host
    ("https://[::1/idp", False), ("https://id.example.com:\uff14\uff14\uff13/idp", False),
])
def test_within_the_issuer(settings: Any, value: str, within: bool) -> None:
    """Below an issuer with a path, the same origin's other paths are not Vigil's."""
    settings.IDP_ISSUER = "https://id.example.com/idp"
    assert within_issuer(value) is within


@pytest.mark.parametrize(("issuer", "value", "within"), [
    ("https://[::1]:8443", "https://[0:0:0:0:0:0:0:1]:8443/userinfo", True),
    ("https://[::1]:8443", "https://[::2]:8443/userinfo", False),
    ("https://127.0.0.1", "https://127.1/userinfo", True), ("https://127.0.0.1", "https://2130706433/token", True),
    ("https://127.0.0.1", "https://0x7f.0.0.1/userinfo", True), ("https://127.0.0.1", "https://127.0.0.2/", False),
    ("https://xn--bcher-kva.example", "https://b\u00fccher.example/userinfo", True),
    ("https://b\u00fccher.example", "https://XN--BCHER-KVA.example/userinfo", True),
    ("https://bucher.example", "https://b\u00fccher.example/userinfo", False),
])
def test_within_an_issuer_at_an_address_or_an_international_name(settings: Any, issuer: str, value: str,
                                                                  within: bool) -> None:
    settings.IDP_ISSUER = issuer
    assert within_issuer(value) is within


@pytest.mark.parametrize("spelling", [
    "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:8000/userinfo",  # full-width letters
    "http://localhost:8000/api/../userinfo", "http://localhost:8000\\userinfo", "http://127.1:8000/userinfo",
])
def test_vigils_urls_spelled_as_a_browser_reads_them_are_served_by_no_client(settings: Any, spelling: str) -> None:
    """Each reaches /userinfo from a browser or an HTTP library (WHATWG URL); refused as the
    plain spelling is, nothing stored."""
    if "127.1" in spelling:
        settings.IDP_ISSUER = "http://127.0.0.1:8000"
    with pytest.raises(ClientRegistrationError, match="Vigil alone serves them"):
        register(served_resources=[spelling])
    assert not Client.objects.exists()


# --- create_client -----------------------------------------------------------------------------
@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--serves-resource", userinfo_endpoint(), "Vigil alone serves them"),
    ("--token-exchange-audience", "svc", "own client_id"),
    ("--client-id", f"{ISSUER}/token", "a client_id is an audience"),
])
def test_create_client_refuses_them(flag: str, value: str, says: str) -> None:
    args = ["--name", "Service", "--confidential", "--redirect-uri", SERVICE_REDIRECT, "--grant-type", EXCHANGE,
            "--client-id", "svc", flag, value]
    with pytest.raises(CommandError, match=says):
        call_command("create_client", *args, stdout=StringIO(), stderr=StringIO())
    assert not Client.objects.exists()


# --- the admin ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("field", "value", "says"), [
    ("served_resources", json.dumps([userinfo_endpoint()]), "Vigil alone serves them"),
    ("token_exchange_audiences", json.dumps(["svc"]), "own client_id"),
    ("token_exchange_audiences", json.dumps([f"{ISSUER}/token"]), "written exactly"),
    ("client_id", userinfo_endpoint(), "a client_id is an audience"),
])
def test_the_admin_refuses_them_as_field_errors(staff: HttpClient, field: str, value: str, says: str) -> None:  # noqa: F811
    client = register().client
    before = stored()
    changes = {"token_exchange_audiences": "[]", field: value}
    response = staff.post(reverse("admin:clients_client_change", args=[client.pk]), admin_form(client, **changes))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field] and says in errors[field][0]
    assert stored() == before


def test_the_admin_keeps_the_userinfo_endpoint_as_an_exchange_audience(staff: HttpClient) -> None:  # noqa: F811
    client = register().client
    response = staff.post(reverse("admin:clients_client_change", args=[client.pk]),
                          admin_form(client, token_exchange_audiences=json.dumps([userinfo_endpoint()])))
    assert response.status_code == 302, response.content.decode()[:2000]
    client.refresh_from_db()
    assert client.token_exchange_audiences == [userinfo_endpoint()]


# --- save() and the bulk writes ------------------------------------------------------------------
def test_save_and_bulk_writes_are_refused_and_change_nothing() -> None:
    client = register(served_resources=["https://api.example.com"]).client
    before = stored()
    client.served_resources = [userinfo_endpoint()]
    with pytest.raises(ValidationError, match="Vigil alone serves them"):
        client.save()
    with pytest.raises(ValidationError, match="own client_id"):
        Client.objects.filter(pk=client.pk).update(token_exchange_audiences=["svc"])
    with pytest.raises(ValidationError, match="Vigil alone serves them"):
        Client.objects.bulk_update([client], ["served_resources"])
    with pytest.raises(ValidationError, match="a client_id is an audience"):
        Client.objects.bulk_create([Client(client_id=ISSUER, name="x", client_type="confidential")])
    assert stored() == before
    assert Client.objects.filter(pk=client.pk).update(token_exchange_audiences=[ORDERS]) == 1  # allowed
    assert Client.objects.get(pk=client.pk).token_exchange_audiences == [ORDERS]


# --- rows written behind the rules: check clients.W003, and they grant nothing --------------------
def test_the_check_reports_rows_written_behind_the_rules() -> None:
    client = register().client
    write_behind_validation(client, served_resources=[userinfo_endpoint()], token_exchange_audiences=["svc"])
    found = check_client_audiences(databases=["default"])
    assert [(e.id, type(e)) for e in found] == [("clients.W003", Warning)] * 2
    assert "'svc', served_resources" in found[0].msg and "'svc', token_exchange_audiences" in found[1].msg
    assert check_client_audiences(databases=None) == []  # a static check run reads no table
    err = StringIO()
    call_command("check", "--database", "default", stdout=StringIO(), stderr=err)  # reported, not stopped
    assert err.getvalue().count("clients.W003") == 2
    client.refresh_from_db()
    client.is_active = False
    client.save(update_fields=["is_active"])  # such a client can still be deactivated


def test_a_row_serving_userinfo_behind_the_rules_introspects_nothing(
        browser: HttpClient, mobile_client: RegisteredClient, service_client: RegisteredClient) -> None:
    """Another client's user token narrowed to /userinfo alone: inactive to a service whose row
    says it serves /userinfo, as to any client that does not serve its audience."""
    narrowed = tokens_for(browser, [userinfo_endpoint()])["access_token"]
    write_behind_validation(service_client.client, served_resources=[userinfo_endpoint()])
    assert introspect(service_client, narrowed).json() == {"active": False}


def test_a_row_exchanging_for_itself_behind_the_rules_mints_nothing(
        tokens: dict[str, Any], backend: RegisteredClient) -> None:  # noqa: F811
    """Allowed, the exchanged token (aud = the backend, client_id = the backend) would be taken
    by /userinfo as the backend's own: refused, nothing issued; the userinfo endpoint listed
    (the administrator's explicit grant) is what reads /userinfo."""
    write_behind_validation(backend.client, token_exchange_audiences=[ORDERS, "backend"])
    issued = AccessToken.objects.count()
    refused = _exchange(backend, tokens["access_token"], audience="backend", scope="openid profile")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
    assert AccessToken.objects.count() == issued
    write_behind_validation(backend.client, token_exchange_audiences=[userinfo_endpoint()])
    granted = _exchange(backend, tokens["access_token"], audience=userinfo_endpoint(), scope="openid profile")
    assert userinfo(granted.json()["access_token"]).json()["preferred_username"] == "alice"


@pytest.mark.parametrize("shape", [json.dumps("https://api.example.com"), {"https://api.example.com": True}])
def test_a_list_of_another_shape_behind_the_rules_is_reported_and_grants_nothing(
        browser: HttpClient, mobile_client: RegisteredClient, service_client: RegisteredClient,
        backend: RegisteredClient, shape: Any) -> None:  # noqa: F811
    """A string or an object where the list is meant (raw SQL, or the admin before it took one
    shape) was read by character or by key, and the rules saw no list at all: the service
    introspected the API's tokens, the backend exchanged for its own client_id, and check
    clients.W003 said nothing. Now such a value names nothing and is reported."""
    narrowed = tokens_for(browser, ["https://api.example.com"])["access_token"]
    assert introspect(service_client, narrowed).json()["active"] is True  # listed, it serves the API
    write_behind_validation(service_client.client, served_resources=shape)
    assert introspect(service_client, narrowed).json() == {"active": False}
    write_behind_validation(backend.client, token_exchange_audiences={ORDERS: True, "backend": True})
    issued = AccessToken.objects.count()
    refused = _exchange(backend, narrowed, audience=ORDERS)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
    assert SecurityEvent.objects.filter(event_type=EventType.OAUTH_TOKEN_EXCHANGE_REFUSED).latest("pk").reason == (
        "audience_not_allowed")
    assert AccessToken.objects.count() == issued
    found = [(w.id, w.msg.split(":")[0]) for w in check_client_audiences(databases=["default"])]
    assert found == [("clients.W003", f"Client '{service_client.client.client_id}', served_resources"),
                     ("clients.W003", "Client 'backend', token_exchange_audiences")]
    service_client.client.refresh_from_db()
    with pytest.raises(ValidationError, match="not a JSON list of strings"):
        service_client.client.save()

