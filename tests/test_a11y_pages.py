"""Every page people see passes axe-core with no serious or critical violation, and is
photographed at phone and desktop size (issue 16 items 4 and 6; the walk: ``tests/a11y_tour.py``).

One browser and one walk per module: the pages are visited once each, and each page's test
reads what the walk found there. Less severe violations (moderate, minor) are printed.
Screenshots go to ``var/artifacts/pages/``, or to ``docs/pages/`` with ``VIGIL_UPDATE_SCREENSHOTS=1``
(``tests/test_docs_pages.py`` checks that docs/pages/ has every page at both sizes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from accounts.tests.test_browser import browser as chromium  # noqa: F401 - Debian's Chromium, once per module
from clients.flows.registration import register_client

from .a11y_tour import (
    AXE_SCRIPT,
    BLOCKING,
    PAGES,
    PASSWORD,
    REDIRECT,
    SIZES,
    Tour,
    Walker,
    describe,
    png_size,
    screenshot_dir,
    walk,
    walk_out_and_back,
)

pytestmark = [pytest.mark.a11y, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _seed() -> tuple[str, str]:
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user(username="alice", password=PASSWORD, email="alice@example.com")
    first = register_client(name="Vigil Photos", public=True, redirect_uris=[REDIRECT], first_party=True)
    third = register_client(name="Photo Printer", public=True, redirect_uris=[REDIRECT],
                            scopes=["openid", "profile", "email", "offline_access", "photos.read"])
    return first.client.client_id, third.client.client_id


@pytest.fixture(scope="module")
def tour(django_db_setup: None, django_db_blocker: Any, live_server: Any, chromium: Any) -> Iterator[Tour]:  # noqa: F811
    base = live_server.url
    out = screenshot_dir()
    out.mkdir(parents=True, exist_ok=True)
    with django_db_blocker.unblock(), override_settings(
            IDP_ISSUER=base, ACCOUNTS_WEBAUTHN_RP_ID="localhost", ACCOUNTS_WEBAUTHN_ALLOWED_ORIGINS=[base]):
        walker = Walker(chromium, base, AXE_SCRIPT, out)
        try:
            first_party, third_party = _seed()
            secret = walk(walker, first_party, third_party)
            walk_out_and_back(walker, first_party, secret)
            yield walker.tour
        finally:
            walker.close()
            call_command("flush", interactive=False, verbosity=0)
            connections.close_all()  # this fixture's connection, or the test database cannot be dropped


def test_the_walk_visits_every_page(tour: Tour) -> None:
    assert list(tour.visits) == list(PAGES)
    assert [p.name for p in tour.shots] == [f"{name}-{size}.png" for name in PAGES for size in SIZES]
    for path in tour.shots:
        width, _ = png_size(path)
        assert width == SIZES[path.stem.rsplit("-", 1)[1]][0], path


@pytest.mark.parametrize("name", PAGES)
def test_page_has_no_serious_or_critical_violations(tour: Tour, name: str) -> None:
    visit = tour.visits[name]
    for violation in visit.violations:
        if violation["impact"] not in BLOCKING:
            print(f"{name}: {describe(violation)}")
    assert visit.blocking() == [], f"{name} ({visit.url})"
