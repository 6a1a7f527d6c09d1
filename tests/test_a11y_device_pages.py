"""The device grant's pages (RFC 8628 §3.3: the code form, its error, the confirmation and the
result) pass axe-core with no serious or critical violation, walked in Debian's headless
Chromium against ``live_server`` the way a person would: sign in, type the code the TV shows,
allow. Screenshots go to the artifacts directory only (the README's gallery is
``tests/a11y_tour.py``'s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from accounts.tests.test_browser import browser as chromium  # noqa: F401 - Debian's Chromium, once per module
from clients.flows.registration import register_client
from idp.oauth.grants.device_code import DEVICE_CODE

from .a11y_tour import ARTIFACTS, AXE_SCRIPT, BLOCKING, NO_AUTOFILL, PASSWORD, describe, viewport

pytestmark = [pytest.mark.a11y, pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PAGES = ("device-enter", "device-error", "device-confirm", "device-done")


def _check(page: Any, axe: str, name: str) -> list[str]:
    page.wait_for_load_state()
    page.add_script_tag(content=axe)
    violations = page.evaluate("axe.run(document, {resultTypes: ['violations']})")["violations"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True, animations="disabled")
    for violation in violations:
        if violation["impact"] not in BLOCKING:
            print(f"{name}: {describe(violation)}")
    return [describe(v) for v in violations if v["impact"] in BLOCKING]


@pytest.fixture(scope="module")
def found(django_db_setup: None, django_db_blocker: Any, live_server: Any,
          chromium: Any) -> Iterator[dict[str, list[str]]]:  # noqa: F811
    base = live_server.url
    with django_db_blocker.unblock(), override_settings(IDP_ISSUER=base):
        from django.contrib.auth import get_user_model

        get_user_model().objects.create_user(username="alice", password=PASSWORD, email="alice@example.com")
        register_client(name="Living-room TV", public=True, redirect_uris=[], client_id="tv",
                        grant_types=[DEVICE_CODE])
        started = requests.post(f"{base}/device_authorization", data={"client_id": "tv", "scope": "openid profile"},
                                timeout=10).json()
        context = chromium.new_context(base_url=base, bypass_csp=True, viewport=viewport("phone"))
        context.add_init_script(NO_AUTOFILL)
        page, axe, results = context.new_page(), AXE_SCRIPT.read_text(), {}
        try:
            page.goto("/device")
            page.fill("#id_username", "alice")
            page.fill("#id_password", PASSWORD)
            with page.expect_navigation():
                page.click("form[data-purpose=login] button[type=submit]")
            results["device-enter"] = _check(page, axe, "device-enter")
            page.fill("#user_code", "BCDF-GHJK")
            with page.expect_navigation():
                page.click("main form button[type=submit]")
            results["device-error"] = _check(page, axe, "device-error")
            page.fill("#user_code", started["user_code"])
            with page.expect_navigation():
                page.click("main form button[type=submit]")
            results["device-confirm"] = _check(page, axe, "device-confirm")
            with page.expect_navigation():
                page.click("button[value=approve]")
            results["device-done"] = _check(page, axe, "device-done")
            yield results
        finally:
            context.close()
            call_command("flush", interactive=False, verbosity=0)
            connections.close_all()


@pytest.mark.parametrize("name", PAGES)
def test_device_page_has_no_serious_or_critical_violations(found: dict[str, list[str]], name: str) -> None:
    assert found[name] == []
