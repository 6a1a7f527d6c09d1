"""Issue 17 §1 under concurrency (PostgreSQL): refreshes of reduced devices racing an admin who
tightens the client's choice (reduce -> deny), on both rotation paths.

Whatever the interleaving: every token issued carries the reduction (scopes, lifetime, claim),
nothing answers with a 500, and once the change is committed no refresh of any of the devices
is granted; their snapshots end as the new policy says."""

from __future__ import annotations

from typing import Any

import pytest

from attestation.testing import google_pki as g
from device_health.models import DeviceHealth, HealthOutcome
from idp.tests.conftest import browser, mobile_client, user  # noqa: F401
from sessions.models import AccessToken
from tests.concurrency import run_concurrently

from .test_graded_trust import ROOTED, G, Phone, choose
from .test_health_token_endpoint import HealthApp, access_claims, android_app, fresh_patch  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("allow_test_roots")]
DEVICES = 3


@pytest.mark.parametrize("one_statement", [True, False], ids=["one-statement", "transactional"])
def test_refreshes_racing_a_tightened_choice_never_escape_it(
    settings: Any, browser: Any, mobile_client: Any, android_app: Any, google: g.GoogleStandIn, one_statement: bool
) -> None:
    settings.SESSIONS_ROTATE_IN_ONE_STATEMENT = one_statement
    client = mobile_client.client
    choose(client, (G.BOOT_NOT_VERIFIED, HealthOutcome.REDUCE), (G.BOOTLOADER_UNLOCKED, HealthOutcome.REDUCE))
    phones = [HealthApp(browser, client.client_id, Phone(google=google)) for _ in range(DEVICES)]
    for phone in phones:
        phone.leaf = {**fresh_patch(), **ROOTED}
        assert phone.login().status_code == 200

    def work(index: int) -> Any:
        if index == DEVICES:  # the admin
            choose(client, (G.BOOT_NOT_VERIFIED, HealthOutcome.DENY))
            return None
        return phones[index].refresh()

    results = run_concurrently(DEVICES + 1, work)
    for response in results[:DEVICES]:
        assert response.status_code in (200, 400), response.content
        if response.status_code == 200:
            claims = access_claims(response)
            assert claims["device_health"] == "reduced" and claims["scope"] == "openid profile"
            assert claims["exp"] - claims["iat"] <= 120
        else:
            assert response.json()["error"] == "invalid_grant", response.content
    tokens = AccessToken.objects.count()
    for phone in phones:  # after the change: every device refused, whether or not it won the race
        response = phone.refresh()
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant", response.content
    assert AccessToken.objects.count() == tokens
    assert set(DeviceHealth.objects.values_list("outcome", flat=True)) == {HealthOutcome.DENY}
