"""Error messages are tied to what they are about (issue 16 item 4; ARIA 1.2 ``aria-describedby``
and ``aria-invalid``), in the HTML the server sends; the browser side of the same check, with
Chromium's accessibility tree, is tests/test_a11y_keyboard.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from .conftest import login_password

pytestmark = pytest.mark.django_db


def _tag(html: str, element_id: str) -> str:
    found = re.search(rf'<[^>]*\bid="{element_id}"[^>]*>', html)
    assert found is not None, element_id
    return found.group(0)


def test_a_refused_password_describes_both_fields(client: Client, user: Any) -> None:
    html = login_password(client, password="not the password").content.decode()
    assert 'id="login-error" role="alert"' in html
    for field in ("id_username", "id_password"):
        tag = _tag(html, field)
        assert 'aria-describedby="login-error"' in tag and 'aria-invalid="true"' in tag


def test_a_fresh_sign_in_page_marks_nothing_invalid(client: Client, db: Any) -> None:
    html = client.get(reverse("accounts:login")).content.decode()
    assert "aria-invalid" not in html and 'id="login-error"' not in html
    assert 'aria-describedby="passkey-error"' in _tag(html, "passkey-login")


def test_a_wrong_second_factor_code_describes_the_code_fields(client: Client, user: Any, totp_device: Any,
                                                              recovery_codes: list[str]) -> None:
    login_password(client)
    html = client.post(reverse("accounts:verify"), {"method": "totp", "code": "12345678"}).content.decode()
    assert 'id="verify-error" role="alert"' in html
    for field in ("id_totp_code", "id_recovery_code"):
        tag = _tag(html, field)
        assert 'aria-describedby="verify-error"' in tag and 'aria-invalid="true"' in tag


def test_a_wrong_enrollment_code_describes_the_code_field(client: Client, user: Any) -> None:
    login_password(client)
    html = client.post(reverse("accounts:totp_enroll"), {"code": "12345678"}).content.decode()
    assert 'id="totp-error" role="alert"' in html
    tag = _tag(html, "id_code")
    assert 'aria-describedby="totp-error"' in tag and 'aria-invalid="true"' in tag
