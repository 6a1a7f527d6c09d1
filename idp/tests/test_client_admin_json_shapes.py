"""The client admin's JSON fields take their one shape (``core.json_form_fields``): a list of
strings, or an object (the JWKS, scope descriptions).

Attack (a slip, or a crafted POST by staff): a number or ``true`` where a list is meant was a
500 (the form's checks iterated it); a string or an object was stored as it came, past the
audience rules (``clients.audiences`` read it as no list at all) and then read by character or
by key; an emptied optional field (how an operator removes what check ``clients.W003``
reports) was a 500 (NULL in a NOT NULL column). Each is now the field's error with nothing
stored, and an emptied field is the empty list or object."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from clients.models import Client
from core.issuer_urls import userinfo_endpoint
from tests.test_admin_json_fields import Shape

from .test_client_audiences import register
from .test_client_registration import admin_form, staff  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

LISTS = ["redirect_uris", "post_logout_redirect_uris", "allowed_scopes", "grant_types", "allowed_audiences",
         "served_resources", "token_exchange_audiences", "request_uris"]
OBJECTS = ["jwks", "scope_descriptions"]
NOT_A_LIST = ["5", "true", json.dumps(userinfo_endpoint()), json.dumps({userinfo_endpoint(): 1}), "[5]",
              '[["https://api.example.com"]]', "[null]"]
NOT_AN_OBJECT = ["5", "true", '"text"', "[]", '["a"]']


def row(client: Client) -> dict[str, Any]:
    return dict(Client.objects.filter(pk=client.pk).values().get())


def post(staff: HttpClient, client: Client, **changes: str) -> Any:
    untouched = {"token_exchange_audiences": "[]", "request_uris": "[]", "scope_descriptions": "{}"}
    form = admin_form(client, **{**untouched, **changes})
    return staff.post(reverse("admin:clients_client_change", args=[client.pk]), form)


#: (field, a value of another shape, the field's error).
WRONG_SHAPES = [*((field, value, Shape.LIST) for field in LISTS for value in NOT_A_LIST),
                *((field, value, Shape.OBJECT) for field in OBJECTS for value in NOT_AN_OBJECT)]


@pytest.mark.parametrize(("field", "value", "shape"), WRONG_SHAPES, ids=[f"{f}={v}" for f, v, _ in WRONG_SHAPES])
def test_a_field_refuses_any_other_shape_and_stores_nothing(staff: HttpClient, field: str,  # noqa: F811
                                                            value: str, shape: Shape) -> None:
    client = register().client
    before = row(client)
    response = post(staff, client, **{field: value})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field] and errors[field] == [shape.value]
    assert row(client) == before


@pytest.mark.parametrize("empty", ["", "null"])
def test_an_emptied_optional_field_is_empty_not_a_500(staff: HttpClient, empty: str) -> None:  # noqa: F811
    """How an operator removes every served resource (check clients.W003's hint)."""
    client = register(served_resources=["https://api.example.com"]).client
    response = post(staff, client, served_resources=empty, allowed_audiences=empty, jwks=empty)
    assert response.status_code == 302, response.content.decode()[:2000]
    stored = row(client)
    assert (stored["served_resources"], stored["allowed_audiences"], stored["jwks"]) == ([], [], {})


@pytest.mark.parametrize("empty", ["", "null"])
def test_an_emptied_required_field_is_still_required(staff: HttpClient, empty: str) -> None:  # noqa: F811
    client = register().client
    before = row(client)
    response = post(staff, client, allowed_scopes=empty)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["allowed_scopes"] == ["This field is required."]
    assert row(client) == before
