"""Challenges: the flow (single use, expiry, client and purpose binding) and the endpoint."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from attestation.errors import AttestationError, Reason
from attestation.flows.challenges import issue_challenge, purge_expired_challenges, redeem_challenge
from attestation.models import Challenge
from idp import crypto
from idp.models import SecurityEvent

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"


def redeem_reason(value: str, **kwargs: Any) -> str:
    with pytest.raises(AttestationError) as exc:
        redeem_challenge(value, **kwargs)
    return exc.value.reason


# --------------------------------------------------------------------- flow
def test_issue_stores_only_the_hash(oauth_client: Any) -> None:
    issued = issue_challenge(oauth_client, "enroll")
    stored = Challenge.objects.get()
    assert stored.challenge_hash == crypto.token_hash(issued.value)
    assert issued.value not in stored.challenge_hash
    assert len(issued.value) >= 43  # 32 random bytes, base64url
    assert issued.expires_in == 300


def test_redeem_once(oauth_client: Any) -> None:
    issued = issue_challenge(oauth_client, "enroll")
    challenge = redeem_challenge(issued.value, client_id="mobile-app", purpose="enroll")
    assert challenge.used_at is not None
    assert redeem_reason(issued.value, client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_REUSED


def test_unknown_challenge(oauth_client: Any) -> None:
    assert redeem_reason("never-issued", client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_UNKNOWN
    assert redeem_reason("", client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_UNKNOWN
    events = SecurityEvent.objects.values_list("event_type", "outcome", "reason")
    assert list(events) == [("attestation.challenge", "failure", "challenge_unknown")] * 2


def test_expired_challenge_with_injected_now(oauth_client: Any) -> None:
    now = timezone.now()
    issued = issue_challenge(oauth_client, "enroll", now=now)
    later = now + timedelta(seconds=300)
    assert redeem_reason(issued.value, client_id="mobile-app", purpose="enroll", now=later) == Reason.CHALLENGE_EXPIRED
    assert redeem_challenge(issued.value, client_id="mobile-app", purpose="enroll", now=later - timedelta(seconds=1))


def test_expired_challenge_with_time_machine(oauth_client: Any) -> None:
    with time_machine.travel("2026-05-01T10:00:00Z", tick=False) as traveller:
        issued = issue_challenge(oauth_client, "refresh")
        traveller.shift(timedelta(minutes=5, seconds=1))
        assert redeem_reason(issued.value, client_id="mobile-app", purpose="refresh") == Reason.CHALLENGE_EXPIRED


def test_lifetime_setting(oauth_client: Any, settings: Any) -> None:
    settings.ATTESTATION_CHALLENGE_LIFETIME = "30"
    assert issue_challenge(oauth_client, "enroll").expires_in == 30


def test_wrong_client_does_not_consume(oauth_client: Any, client_factory: Callable[..., Any]) -> None:
    client_factory("other-app")
    issued = issue_challenge(oauth_client, "enroll")
    assert redeem_reason(issued.value, client_id="other-app", purpose="enroll") == Reason.CHALLENGE_WRONG_CLIENT
    assert redeem_challenge(issued.value, client_id="mobile-app", purpose="enroll")


def test_wrong_purpose_does_not_consume(oauth_client: Any) -> None:
    issued = issue_challenge(oauth_client, "refresh")
    assert redeem_reason(issued.value, client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_WRONG_PURPOSE
    assert redeem_challenge(issued.value, client_id="mobile-app", purpose="refresh")


def test_unknown_purpose_is_refused_at_issue(oauth_client: Any) -> None:
    with pytest.raises(ValueError):
        issue_challenge(oauth_client, "login")


def test_purge_expired(oauth_client: Any) -> None:
    now = timezone.now()
    issue_challenge(oauth_client, "enroll", now=now - timedelta(hours=1))
    issue_challenge(oauth_client, "enroll", now=now)
    assert purge_expired_challenges(now=now) == 1
    assert Challenge.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_redemption_succeeds_once(oauth_client: Any) -> None:
    issued = issue_challenge(oauth_client, "enroll")
    results: list[str] = []

    def redeem() -> None:
        try:
            redeem_challenge(issued.value, client_id="mobile-app", purpose="enroll")
            results.append("ok")
        except AttestationError as exc:
            results.append(exc.reason)
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("ok") == 1
    assert set(results) == {"ok", Reason.CHALLENGE_REUSED}


# --------------------------------------------------------------------- endpoint
def post_form(client: Any, data: dict[str, str]) -> Any:
    """Apps post the challenge request form-encoded (or as JSON)."""
    return client.post(reverse("attestation:challenge"), urlencode(data), content_type=FORM)


def test_endpoint_issues_a_challenge(client: Any, oauth_client: Any) -> None:
    response = post_form(client, {"client_id": "mobile-app", "purpose": "enroll"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"attestation_challenge", "purpose", "expires_in"}
    assert response["OAuth-Client-Attestation-Challenge"] == body["attestation_challenge"]
    assert response["Cache-Control"] == "no-store"
    assert redeem_challenge(body["attestation_challenge"], client_id="mobile-app", purpose="enroll")


def test_endpoint_accepts_json(client: Any, oauth_client: Any) -> None:
    response = client.post(
        reverse("attestation:challenge"), {"client_id": "mobile-app", "purpose": "refresh"}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["purpose"] == "refresh"


@pytest.mark.parametrize(
    "data, status, error",
    [
        ({"client_id": "nobody", "purpose": "enroll"}, 401, "invalid_client"),
        ({"client_id": "mobile-app", "purpose": "login"}, 400, "invalid_request"),
        ({"purpose": "enroll"}, 400, "invalid_request"),
        ({"client_id": "mobile-app"}, 400, "invalid_request"),
    ],
    ids=["unknown-client", "bad-purpose", "no-client", "no-purpose"],
)
def test_endpoint_errors(client: Any, oauth_client: Any, data: dict[str, str], status: int, error: str) -> None:
    response = post_form(client, data)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert Challenge.objects.count() == 0


def test_endpoint_refuses_inactive_client(client: Any, client_factory: Callable[..., Any]) -> None:
    client_factory("retired-app", is_active=False)
    response = post_form(client, {"client_id": "retired-app", "purpose": "enroll"})
    assert response.status_code == 401


def test_endpoint_malformed_json_is_400(client: Any, oauth_client: Any) -> None:
    response = client.post(reverse("attestation:challenge"), "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_endpoint_only_accepts_post(client: Any, oauth_client: Any) -> None:
    response = client.get(reverse("attestation:challenge"))
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_endpoint_is_rate_limited(client: Any, oauth_client: Any, settings: Any) -> None:
    settings.ATTESTATION_CHALLENGE_RATE = "2/min"
    statuses = [post_form(client, {"client_id": "mobile-app", "purpose": "enroll"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_openapi_schema_describes_the_challenge_endpoint() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/attestation/challenge"]["post"]
    assert "requestBody" in operation
    assert "attestation_challenge" in str(schema["components"]["schemas"])


@pytest.mark.parametrize(
    "reason, error",
    [(Reason.CHALLENGE_EXPIRED, "use_attestation_challenge"), (Reason.CHALLENGE_REUSED, "use_attestation_challenge"),
     (Reason.ATTESTATION_REQUIRED, "use_attestation_challenge"), (Reason.NONCE_MISMATCH, "invalid_client_attestation"),
     (Reason.CHAIN_UNTRUSTED, "invalid_client_attestation")],
)
def test_oauth_error_mapping(reason: str, error: str) -> None:
    from attestation.oauth_errors import oauth_error_code

    assert oauth_error_code(reason) == error
