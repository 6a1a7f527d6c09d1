"""The metrics after real flows (docs/operations.md "Metrics"): tokens by grant and client,
refresh outcomes, refusals by reason, logins by factor, HTTP requests by URL name; labels
only from enums, URL names and registered clients."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client as HttpClient
from django.urls import reverse

from clients.flows.registration import register_client
from core.events import EventType
from core.metrics import OTHER
from core.models import SecurityEvent
from idp.flows.resource import Refusal
from idp.tests.conftest import MOBILE_CLIENT_ID, PASSWORD, form_post
from idp.tests.test_userinfo_audience import tokens_for, userinfo
from ops import labels

from .conftest import Deltas, sample

pytestmark = pytest.mark.django_db(transaction=True)  # events are counted once committed


def refresh(token: str, client_id: str = MOBILE_CLIENT_ID) -> Any:
    return form_post(HttpClient(), reverse("token"), {"grant_type": "refresh_token", "refresh_token": token,
                                                      "client_id": client_id})


def test_code_exchange_and_refresh_outcomes(tokens: dict[str, Any], settings: Any) -> None:
    """``tokens`` ran the real login form, authorization and code exchange."""
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 30
    assert sample("vigil_tokens_issued_total", grant="authorization_code", client=MOBILE_CLIENT_ID) >= 1
    assert sample("vigil_logins_total", factor="password", result="success") >= 1
    refreshes = Deltas(*[("vigil_refresh_total", {"outcome": o, "reason": r, "client": MOBILE_CLIENT_ID})
                         for o, r in [("rotated", "none"), ("grace_retry", "none"), ("reuse", "reuse")]],
                       ("vigil_tokens_issued_total", {"grant": "refresh_token", "client": MOBILE_CLIENT_ID}),
                       ("vigil_sessions_revoked_total", {"reason": "refresh_token_reuse"}),
                       ("vigil_http_requests_total", {"endpoint": "token", "method": "POST", "status": "200"}),
                       ("vigil_http_requests_total", {"endpoint": "token", "method": "POST", "status": "400"}),
                       ("vigil_http_request_duration_seconds_count", {"endpoint": "token", "status_class": "2xx"}))
    first = tokens["refresh_token"]
    successor = refresh(first).json()["refresh_token"]  # rotated
    assert refresh(first).json()["refresh_token"] == successor  # the lost response's retry
    assert refresh(successor).status_code == 200  # rotated
    assert refresh(first).json()["error"] == "invalid_grant"  # reuse: the family is revoked
    assert refreshes.gained() == [2, 1, 1, 3, 1, 3, 1, 3]


def test_a_code_exchange_answered_again_counts_as_issued(browser: Any, mobile_client: Any) -> None:
    """The retry of a lost exchange answer issues an access token: counted like the first."""
    from idp.tests.conftest import exchange, get_code, make_pkce

    pkce = make_pkce()
    code, _ = get_code(browser, MOBILE_CLIENT_ID, pkce)
    issued = Deltas(("vigil_tokens_issued_total", {"grant": "authorization_code", "client": MOBILE_CLIENT_ID}))
    assert exchange(HttpClient(), code, pkce, MOBILE_CLIENT_ID).status_code == 200
    assert exchange(HttpClient(), code, pkce, MOBILE_CLIENT_ID).status_code == 200  # answered again
    assert exchange(HttpClient(), code, make_pkce(), MOBILE_CLIENT_ID).status_code == 400  # no verifier: nothing
    assert issued.gained() == [2]


def test_refusals_by_reason_and_unknown_clients_as_other() -> None:
    errors = Deltas(("vigil_oauth_errors_total", {"error": "invalid_client"}),
                    ("vigil_http_requests_total", {"endpoint": "token", "method": "POST", "status": "401"}))
    response = refresh("not-a-token", client_id="made-up-client-id")
    assert response.status_code == 401
    assert errors.gained() == [1, 1]
    text = HttpClient().get("/metrics", HTTP_AUTHORIZATION="Bearer x").content.decode()  # closed: nothing
    assert "made-up-client-id" not in text
    assert not [m for m in _all_label_values() if "made-up-client-id" in m]


def test_resource_refusals_are_counted_by_why_as_recorded(browser: Any, tokens: dict[str, Any]) -> None:
    """Refusals at /userinfo, driven for real: each is counted under why it was refused (its
    event's ``detail``, a ``Refusal``), though most answer ``invalid_token`` alike, and the
    counts equal the audit log's."""
    narrowed = tokens_for(browser, ["https://api.example.com"])["access_token"]  # RFC 8707: the API's alone
    revoked = tokens_for(browser, [])["access_token"]
    assert form_post(HttpClient(), reverse("revoke"), {"token": revoked, "client_id": MOBILE_CLIENT_ID}).status_code == 200
    series = [*(why.value for why in Refusal), OTHER]
    seen = Deltas(*[("vigil_resource_token_refusals_total", {"reason": reason}) for reason in series])
    last = SecurityEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    for authorization in ["", "Basic dXNlcjpwYXNz", "Bearer not.a.token", f"Bearer {narrowed}", f"Bearer {revoked}"]:
        assert HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=authorization).status_code == 401
    two = form_post(HttpClient(), reverse("userinfo"), {"access_token": tokens["access_token"]},
                    HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert two.status_code == 400
    with time_machine.travel(timedelta(hours=1)):  # past the access token's exp
        assert userinfo(tokens["access_token"]).status_code == 401
    recorded = Counter(event.details["detail"] for event in SecurityEvent.objects.filter(
        event_type=EventType.RESOURCE_TOKEN_REFUSED, pk__gt=last or 0))
    assert recorded == {"no_token": 1, "unsupported_scheme": 1, "unverifiable": 1, "wrong_audience": 1,
                        "revoked": 1, "malformed_request": 1, "expired": 1}
    assert {reason: n for reason, n in zip(series, seen.gained(), strict=True) if n} == recorded


def _all_label_values() -> list[str]:
    from prometheus_client import REGISTRY

    return [value for family in REGISTRY.collect() for s in family.samples for value in s.labels.values()]


def test_failed_logins_by_factor(user: Any) -> None:
    failures = Deltas(("vigil_logins_total", {"factor": "password", "result": "failure"}))
    response = HttpClient().post(reverse("accounts:login"), {"username": "alice", "password": "wrong" + PASSWORD})
    assert response.status_code == 400
    assert failures.gained() == [1]


def test_client_label_is_a_registered_client_or_other(settings: Any) -> None:
    register_client(name="A", public=True, redirect_uris=["com.example.a:/cb"], client_id="client-a")
    register_client(name="B", public=True, redirect_uris=["com.example.b:/cb"], client_id="client-b")
    assert labels.client("client-a") == "client-a"
    assert labels.client("someone-else") == OTHER
    settings.VIGIL_METRICS_MAX_CLIENTS = 1
    from core import config_cache

    config_cache.clear_local()
    assert labels.client("client-a") == "client-a" and labels.client("client-b") == OTHER


def test_unmatched_paths_share_one_series() -> None:
    probe = Deltas(("vigil_http_requests_total", {"endpoint": "unmatched", "method": "GET", "status": "404"}))
    for path in ("/wp-login.php", "/.env", "/a/b/c/d"):
        HttpClient().get(path)
    assert probe.gained() == [3]
    assert "/wp-login.php" not in _all_label_values()


def test_a_sign_in_ended_by_a_password_change_is_no_login(user: Any) -> None:
    """Someone holding the old password waits at the second step; the owner changes the password
    meanwhile, which ends that half-done sign-in (``accounts.pending``): no factor was tried and
    nobody got a session, so no login is counted, of any factor or result. It stays on record."""
    from accounts.tests.conftest import code_for, confirmed_totp

    device = confirmed_totp(user)
    intruder, owner = HttpClient(), HttpClient()
    for agent in (intruder, owner):
        assert agent.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD}).status_code == 302
    assert owner.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(device)}).status_code == 302
    new_password = "a different long passphrase 7"
    assert owner.post(reverse("accounts:password_change"), {
        "old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password}).status_code == 302
    logins = Deltas(*[("vigil_logins_total", {"factor": factor, "result": result})
                      for factor in ("none", "password", "totp", "recovery", "passkey", OTHER)
                      for result in ("success", "failure", "throttled")])

    ended = intruder.post(reverse("accounts:verify"), {"method": "totp", "code": "123456"})
    assert ended.status_code == 302 and ended["Location"].startswith(reverse("accounts:login"))
    assert SecurityEvent.objects.filter(event_type="login.second_factor", outcome="denied", reason="password_changed",
                                        user=user).count() == 1
    assert set(logins.gained()) == {0}
