"""The committed OpenAPI schema (docs/openapi.yaml) is what the code generates."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
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
