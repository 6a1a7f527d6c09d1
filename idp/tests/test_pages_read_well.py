"""Pages say what they are about (issue 13, smaller items): the logout error page is about
signing out, SSF admin help texts carry no reStructuredText markup, and the consent page
describes standard scopes in plain language."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from idp.scopes import SCOPE_DESCRIPTIONS, ScopeView, StandardScope, describe_scopes

from .conftest import PASSWORD, authorize_params


def test_logout_error_page_has_its_own_title(browser: Any, tokens: dict[str, Any]) -> None:
    response = browser.get(reverse("end-session"), {"id_token_hint": tokens["id_token"],
                                                   "post_logout_redirect_uri": "https://evil.example"})
    assert response.status_code == 400
    text = response.content.decode()
    assert "<title>Sign-out request problem · Vigil</title>" in text
    assert "<h1>This sign-out request cannot be completed</h1>" in text
    assert "sign-in request" not in text


def test_authorize_error_page_keeps_its_title(client: Any, db: Any) -> None:
    response = client.get(reverse("authorize"), {"client_id": "nobody", "response_type": "code"})
    assert response.status_code == 400
    assert "<h1>This sign-in request cannot be completed</h1>" in response.content.decode()


@pytest.mark.parametrize("model", ["ssfreceiver", "ssftransmitter"])
def test_ssf_admin_help_texts_have_no_raw_markup(admin_client: Any, model: str) -> None:
    page = admin_client.get(reverse(f"admin:shared_signals_{model}_add"))
    assert page.status_code == 200
    helps = re.findall(r'<div class="help"[^>]*>(.*?)</div>', page.content.decode(), re.S)
    assert helps and not any("``" in h for h in helps)


def test_consent_page_describes_standard_scopes(client: Any, user: Any, service_client: Any, pkce: Any) -> None:
    client.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    params = authorize_params(service_client.client.client_id, pkce, redirect_uri="https://service.example.com/callback",
                              scope="openid profile email offline_access orders.read")
    page = client.get(f"{reverse('authorize')}?{urlencode(params)}")
    assert page.status_code == 200
    items = re.findall(r"<li>(.*?)</li>", page.content.decode())
    assert [re.sub(r"<.*", "", item).strip() for item in items] == [
        view.description for view in describe_scopes("openid profile email offline_access orders.read")]
    assert all(str(SCOPE_DESCRIPTIONS[s]) in page.content.decode() for s in ("openid", "profile", "email", "offline_access"))
    assert "See your email address" in str(SCOPE_DESCRIPTIONS["email"])


def test_every_standard_scope_has_a_description() -> None:
    assert set(SCOPE_DESCRIPTIONS) == {s.value for s in StandardScope}
    assert {"openid", "profile", "email", "phone", "address", "offline_access"} == set(SCOPE_DESCRIPTIONS)
    assert all(str(text) and str(text) != scope for scope, text in SCOPE_DESCRIPTIONS.items())
    # A custom scope is shown by its own name, marked as not one of ours.
    assert describe_scopes("orders.read") == [ScopeView("orders.read", "Access “orders.read”", known=False)]
