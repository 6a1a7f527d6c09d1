"""Every JSON column an admin edits takes its one shape (``core.json_form_fields``), in every
admin, not only the client's (``idp/tests/test_client_admin_json_shapes.py``).

Attack (a slip, or a crafted POST by staff): Django's ``forms.JSONField`` takes any JSON. A
transmitter's JWKS or policy given as a number, ``true``, a string or a list was a 500 (its
``clean()`` called ``.get``/``.items`` on it), its algorithms as a number or ``true`` a 500
(iterated), as an object stored and read by key; an app's signing-certificate digests were
stored in any shape; an emptied optional field was a 500 (NULL in a NOT NULL column). Each is
now the field's error with the row unchanged; an emptied optional field is ``[]`` or ``{}``.
The last test keeps it so: a JSON column any admin can edit must be listed here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.options import InlineModelAdmin
from django.db import models
from django.test import Client as HttpClient
from django.test import RequestFactory
from django.urls import reverse

from accounts.models import User
from attestation.models import RegisteredApp
from clients.models import Client
from idp.models import Consent
from risk.models import UserRiskProfile
from shared_signals.models import CaepEvent, ReceiverAction, SsfReceiver, SsfTransmitter

pytestmark = pytest.mark.django_db


class Shape(StrEnum):
    LIST = 'Enter a JSON list of strings, e.g. ["one", "two"].'
    OBJECT = 'Enter a JSON object, e.g. {"name": "value"}.'


WRONG = {
    Shape.LIST: ["5", "true", '"ES256"', '{"ES256": 1}', "[5]", "[null]", '[["ES256"]]', '[{"kty": "EC"}]'],
    Shape.OBJECT: ["5", "true", '"text"', "[]", '["keys"]', "[{}]"],
}
CREATED_AT = datetime(2026, 1, 1, tzinfo=UTC)  # as the forms below post it: a saved row keeps it
CREATED = {"created_at_0": "2026-01-01", "created_at_1": "00:00:00"}
DIGEST = "Aa" * 21 + "A="  # 32 bytes, base64
OTHER_DIGEST = base64.b64encode(bytes.fromhex("bb" * 32)).decode()  # stored as the admin stores it


def _app() -> RegisteredApp:
    client = Client.objects.create(client_id="android-app", name="App", client_type="public",
                                   token_endpoint_auth_method="none", redirect_uris=["com.example:/cb"],
                                   allowed_scopes=["openid"], grant_types=["authorization_code"])
    return RegisteredApp.objects.create(client=client, platform="android", android_package_name="com.example.app",
                                        android_signing_cert_digests=[DIGEST], created_at=CREATED_AT)


def _app_form(app: Any) -> dict[str, Any]:
    return {"client": app.client_id, "platform": "android", "android_package_name": app.android_package_name,
            "android_signing_cert_digests": json.dumps(app.android_signing_cert_digests),
            "ios_environment": "production", "min_integrity_level": "device", "play_integrity_max_age_minutes": 0,
            "require_attestation": "on", "devicecheck_mode": "off", "devicecheck_on_failure": "fail_closed",
            **CREATED}


def _receiver() -> SsfReceiver:
    return SsfReceiver.objects.create(name="RP", audience="https://rp.example.com",
                                      endpoint_url="https://rp.example.com/events", created_at=CREATED_AT)


def _receiver_form(receiver: Any) -> dict[str, Any]:
    return {"name": receiver.name, "audience": receiver.audience, "endpoint_url": receiver.endpoint_url,
            "events_requested": json.dumps(receiver.events_requested), "enabled": "on", **CREATED}


def _transmitter() -> SsfTransmitter:
    return SsfTransmitter.objects.create(name="MDM", issuer="https://mdm.example.com", audience="vigil",
                                         jwks_uri="https://mdm.example.com/jwks.json", jwks={"keys": [{"kty": "EC"}]},
                                         created_at=CREATED_AT)


def _transmitter_form(transmitter: Any) -> dict[str, Any]:
    return {"name": transmitter.name, "issuer": transmitter.issuer, "jwks_uri": transmitter.jwks_uri,
            "jwks": json.dumps(transmitter.jwks), "audience": transmitter.audience,
            "allowed_algs": json.dumps(transmitter.allowed_algs), "policy": json.dumps(transmitter.policy),
            "enabled": "on", **CREATED}


@dataclass(frozen=True)
class Editable:
    """One JSON column an admin edits: how to make a row, its change form, a good value."""

    model: type[models.Model]
    field: str
    shape: Shape
    make: Callable[[], models.Model]
    form: Callable[[Any], dict[str, Any]]
    good: Any

    def __str__(self) -> str:
        return f"{self.model.__name__}.{self.field}"

    @property
    def optional(self) -> bool:
        return any(field.blank for field in self.model._meta.fields if field.name == self.field)


EDITABLE = [
    Editable(RegisteredApp, "android_signing_cert_digests", Shape.LIST, _app, _app_form, [DIGEST, OTHER_DIGEST]),
    Editable(SsfReceiver, "events_requested", Shape.LIST, _receiver, _receiver_form,
             [CaepEvent.CREDENTIAL_CHANGE.value]),
    Editable(SsfTransmitter, "jwks", Shape.OBJECT, _transmitter, _transmitter_form, {"keys": [{"kty": "OKP"}]}),
    Editable(SsfTransmitter, "allowed_algs", Shape.LIST, _transmitter, _transmitter_form, ["ES256"]),
    Editable(SsfTransmitter, "policy", Shape.OBJECT, _transmitter, _transmitter_form,
             {CaepEvent.SESSION_REVOKED.value: ReceiverAction.RECORD.value}),
]
WRONG_SHAPES = [(case, value) for case in EDITABLE for value in WRONG[case.shape]]


def _row(obj: models.Model) -> dict[str, Any]:
    return dict(type(obj)._default_manager.filter(pk=obj.pk).values().get())


def _post(staff: HttpClient, case: Editable, obj: models.Model, value: str) -> Any:
    opts = case.model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return staff.post(url, {**case.form(obj), case.field: value})


@pytest.mark.parametrize(("case", "value"), WRONG_SHAPES, ids=[f"{c}={v}" for c, v in WRONG_SHAPES])
def test_a_wrong_shape_is_the_fields_error_and_changes_nothing(admin_client: HttpClient, case: Editable,
                                                               value: str) -> None:
    obj = case.make()
    before = _row(obj)
    response = _post(admin_client, case, obj, value)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [case.field] and errors[case.field] == [case.shape.value]
    assert _row(obj) == before


@pytest.mark.parametrize("case", EDITABLE, ids=str)
@pytest.mark.parametrize("empty", ["", "null"])
def test_an_emptied_field_is_empty_when_optional_and_required_otherwise(admin_client: HttpClient, case: Editable,
                                                                        empty: str) -> None:
    obj = case.make()
    before = _row(obj)
    response = _post(admin_client, case, obj, empty)
    if case.optional:
        assert response.status_code == 302, response.content.decode()[:2000]
        assert _row(obj) == {**before, case.field: [] if case.shape is Shape.LIST else {}}
    else:
        assert response.status_code == 200
        assert response.context["adminform"].form.errors == {case.field: ["This field is required."]}
        assert _row(obj) == before


@pytest.mark.parametrize("case", EDITABLE, ids=str)
def test_a_good_value_is_saved(admin_client: HttpClient, case: Editable) -> None:
    obj = case.make()
    before = _row(obj)
    response = _post(admin_client, case, obj, json.dumps(case.good))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _row(obj) == {**before, case.field: case.good}


@pytest.mark.parametrize("make", [
    lambda user: Consent.objects.create(user=user, client=_app().client, scopes=["openid"]),
    lambda user: UserRiskProfile.objects.create(user=user, countries=["FR"]),
], ids=["Consent", "UserRiskProfile"])
def test_an_admin_showing_json_without_editing_refuses_a_post(admin_client: HttpClient, admin_user: User,
                                                              make: Callable[[User], models.Model]) -> None:
    obj = make(admin_user)
    before = _row(obj)
    opts = obj._meta
    response = admin_client.post(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]),
                                 {"scopes": "5", "countries": "true"})
    assert response.status_code == 403
    assert _row(obj) == before


def _editable_json_fields() -> set[str]:
    """``Model.field`` of each JSON column a superuser can change or add through any admin or inline."""
    request = RequestFactory().get("/")
    request.user = User(is_superuser=True, is_staff=True, is_active=True)
    found = set()
    for model, model_admin in admin.site._registry.items():
        views: list[Any] = [model_admin, *(inline(model, admin.site) for inline in model_admin.inlines)]
        for view in views:
            inline = isinstance(view, InlineModelAdmin)
            writes = view.has_change_permission(request, None) or view.has_add_permission(request, *[None] * inline)
            form = view.get_formset(request, None).form if inline else view.get_form(request, None)
            columns = {f.name for f in view.model._meta.fields if isinstance(f, models.JSONField)}
            shown = set(form.base_fields) - set(view.get_readonly_fields(request, None))
            found |= {f"{view.model.__name__}.{name}" for name in columns & shown if writes}
    return found


def test_every_json_column_an_admin_edits_is_covered_here() -> None:
    """The client's are covered by ``idp/tests/test_client_admin_json_shapes.py``."""
    client_fields = {f"Client.{f.name}" for f in Client._meta.fields if isinstance(f, models.JSONField)}
    assert _editable_json_fields() - client_fields == {str(case) for case in EDITABLE}


# --- a registered app's signing-certificate digests: SHA-256 values, stored as registration does ---
@pytest.mark.parametrize("digest", ["not-a-digest", "ab" * 31, "Aa" * 20])
def test_a_digest_that_is_no_sha256_is_the_fields_error_and_changes_nothing(admin_client: HttpClient,
                                                                          digest: str) -> None:
    case = EDITABLE[0]
    app = case.make()
    before = _row(app)
    response = _post(admin_client, case, app, json.dumps([DIGEST, digest]))
    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors[case.field]
    assert digest in error and "SHA-256" in error
    assert _row(app) == before


def test_a_hex_digest_is_stored_as_base64_as_the_registration_command_stores_it(admin_client: HttpClient) -> None:
    case = EDITABLE[0]
    app = case.make()
    hex_with_colons = ":".join(["BB"] * 32)
    assert _post(admin_client, case, app, json.dumps([hex_with_colons])).status_code == 302
    assert RegisteredApp.objects.get(pk=app.pk).android_signing_cert_digests == [OTHER_DIGEST]
