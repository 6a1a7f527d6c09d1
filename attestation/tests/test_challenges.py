"""Challenges: the flow (stateless, signed with django.core.signing under their own salt, single
use through the shared cache, expiry, client and purpose binding), forged values, values of the
old format or another purpose, key rotation, and the endpoint."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import struct
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
import time_machine
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac

from attestation.errors import AttestationError, Reason
from attestation.flows.challenges import (
    USED_MARGIN,
    RedeemedChallenge,
    claim_challenge,
    consume_challenge,
    issue_challenge,
    redeem_challenge,
    used_key,
)
from core.encoding import b64url_decode, b64url_encode
from core.models import SecurityEvent
from core.signed_values import Purpose, dump
from sessions.dpop import issue_nonce
from tests.concurrency import run_concurrently

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"
OTHER_KEY = "another-deployment-secret-key-0123456789abcdef0123456789"


def redeem_reason(value: str, **kwargs: Any) -> str:
    with pytest.raises(AttestationError) as exc:
        redeem_challenge(value, **kwargs)
    return exc.value.reason


def unpack(value: str) -> tuple[bytes, bytes]:
    """``(payload, signature)`` of an issued value (``base64url(payload) "." base64url(sig)``)."""
    payload, tag = value.split(".")
    return b64url_decode(payload), b64url_decode(tag)


def pack(payload: bytes, tag: bytes) -> str:
    return f"{b64url_encode(payload)}.{b64url_encode(tag)}"


def signed(payload: bytes) -> str:
    """A value with a genuine signature over ``payload`` (as only this server could mint)."""
    return dump(Purpose.ATTESTATION_CHALLENGE, payload)


def old_format(payload: bytes) -> str:
    """A value in the previous home-made format (version byte, payload, HMAC tag, one
    base64url string), with a tag genuine under today's SECRET_KEY."""
    versioned = bytes([1]) + payload
    tag = salted_hmac("vigil.attestation.challenge", versioned, algorithm="sha256").digest()
    return b64url_encode(versioned + tag)


# --------------------------------------------------------------------- flow
def test_issue_is_stateless_and_compact(oauth_client: Any, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        issued = issue_challenge(oauth_client, "enroll")
    assert issued.expires_in == 300
    assert len(issued.value) <= 120  # travels in a header and in the binding
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}", issued.value)
    payload, _ = unpack(issued.value)
    assert payload[4] == 1 and payload.endswith(b"mobile-app")
    assert issue_challenge(oauth_client, "enroll").value != issued.value


def test_redeem_once_without_any_query(oauth_client: Any, django_assert_num_queries: Any) -> None:
    issued = issue_challenge(oauth_client, "enroll")
    with django_assert_num_queries(0):
        challenge = redeem_challenge(issued.value, client_id="mobile-app", purpose="enroll")
    assert challenge == RedeemedChallenge(
        client_id="mobile-app", purpose="enroll", expires_at=issued.expires_at, used_at=challenge.used_at
    )
    assert cache.get(used_key(issued.value)) == 1
    assert redeem_reason(issued.value, client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_REUSED


def test_claim_is_the_same_check_without_any_query(oauth_client: Any, django_assert_num_queries: Any) -> None:
    issued = issue_challenge(oauth_client, "refresh")
    with django_assert_num_queries(0):
        claim_challenge(issued.value, client_id="mobile-app", purpose="refresh")  # raises when refused
    with pytest.raises(AttestationError, match=Reason.CHALLENGE_REUSED):
        claim_challenge(issued.value, client_id="mobile-app", purpose="refresh")


def test_unknown_challenge(oauth_client: Any) -> None:
    assert redeem_reason("never-issued", client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_UNKNOWN
    assert redeem_reason("", client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_UNKNOWN
    events = SecurityEvent.objects.values_list("event_type", "outcome", "reason")
    assert list(events) == [("attestation.challenge", "failure", "challenge_unknown")] * 2


@pytest.mark.parametrize("value", [None, 42, "é" * 80, "A" * 600, "!!!!", "AAAA"])
def test_malformed_values_are_unknown(oauth_client: Any, value: Any) -> None:
    with pytest.raises(AttestationError, match=Reason.CHALLENGE_UNKNOWN):
        consume_challenge(value, client_id="mobile-app", purpose="enroll")


def test_expired_challenge_with_injected_now(oauth_client: Any) -> None:
    now = timezone.now()
    issued = issue_challenge(oauth_client, "enroll", now=now)
    later = now + timedelta(seconds=300)
    assert redeem_reason(issued.value, client_id="mobile-app", purpose="enroll", now=later) == Reason.CHALLENGE_EXPIRED
    # the expired attempt did not consume it: still good a second earlier, once
    assert redeem_challenge(issued.value, client_id="mobile-app", purpose="enroll", now=later - timedelta(seconds=1))
    assert redeem_reason(issued.value, client_id="mobile-app", purpose="enroll", now=now) == Reason.CHALLENGE_REUSED


def test_expired_challenge_with_time_machine(oauth_client: Any) -> None:
    with time_machine.travel("2026-05-01T10:00:00Z", tick=False) as traveller:
        issued = issue_challenge(oauth_client, "refresh")
        traveller.shift(timedelta(minutes=5, seconds=1))
        assert redeem_reason(issued.value, client_id="mobile-app", purpose="refresh") == Reason.CHALLENGE_EXPIRED


def test_used_mark_lives_until_just_after_expiry(oauth_client: Any, settings: Any) -> None:
    # an in-process cache, so the travelling clock also ages the mark (Redis: the test below)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ttl"}}
    with time_machine.travel("2026-05-01T10:00:00Z", tick=False) as traveller:
        issued = issue_challenge(oauth_client, "refresh")
        redeem_challenge(issued.value, client_id="mobile-app", purpose="refresh")
        traveller.shift(timedelta(seconds=299))
        assert redeem_reason(issued.value, client_id="mobile-app", purpose="refresh") == Reason.CHALLENGE_REUSED
        traveller.shift(timedelta(seconds=USED_MARGIN + 2))
        assert cache.get(used_key(issued.value)) is None  # gone, and the value is expired by now
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


# --------------------------------------------------------------------- forgeries
def test_editing_the_client_field_breaks_the_tag(oauth_client: Any, client_factory: Callable[..., Any]) -> None:
    client_factory("other-app")
    issued = issue_challenge(oauth_client, "enroll")
    payload, tag = unpack(issued.value)
    forged = pack(payload.replace(b"mobile-app", b"other-app"), tag)
    assert redeem_reason(forged, client_id="other-app", purpose="enroll") == Reason.CHALLENGE_UNKNOWN
    assert redeem_challenge(issued.value, client_id="mobile-app", purpose="enroll")  # the original is untouched


@pytest.mark.parametrize(
    "offset", [0, 3, 4, 5, 6, 37, -1], ids=["expiry-high", "expiry-low", "purpose", "nonce-length", "nonce", "nonce-end", "client"]
)
def test_flipped_payload_byte_keeps_no_tag_valid(oauth_client: Any, offset: int) -> None:
    issued = issue_challenge(oauth_client, "enroll")
    payload, tag = unpack(issued.value)
    offset %= len(payload)
    flipped = payload[:offset] + bytes([payload[offset] ^ 0x01]) + payload[offset + 1:]
    assert redeem_reason(pack(flipped, tag), client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_UNKNOWN


def test_forged_tags_are_unknown(oauth_client: Any) -> None:
    issued = issue_challenge(oauth_client, "enroll")
    payload, tag = unpack(issued.value)
    later = struct.pack(">I", struct.unpack(">I", payload[:4])[0] + 86400)
    extended = later + payload[4:]
    for forged in (
        pack(payload, bytes(32)),
        pack(payload, tag[:-1] + bytes([tag[-1] ^ 0x80])),
        pack(extended, hmac.new(b"guess", extended, hashlib.sha256).digest()),
        pack(payload, b""),  # tag stripped
        pack(payload, tag[:16]),  # tag truncated
    ):
        assert redeem_reason(forged, client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_UNKNOWN
    assert redeem_challenge(issued.value, client_id="mobile-app", purpose="enroll")


def test_unknown_purpose_code_or_short_nonce_is_unknown_even_with_a_genuine_signature(oauth_client: Any) -> None:
    payload, _ = unpack(issue_challenge(oauth_client, "enroll").value)
    assert redeem_reason(signed(payload[:4] + bytes([9]) + payload[5:]), client_id="mobile-app", purpose="enroll") == (
        Reason.CHALLENGE_UNKNOWN  # purpose code 9 does not exist
    )
    short = payload[:5] + bytes([8]) + payload[6:14] + b"mobile-app"
    assert redeem_reason(signed(short), client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_UNKNOWN


def test_old_format_is_unknown_like_any_stale_value(oauth_client: Any) -> None:
    """A challenge in the format used before django.core.signing: ``challenge_unknown``, the
    answer that sends the app back for a new challenge."""
    payload, _ = unpack(issue_challenge(oauth_client, "enroll").value)
    assert redeem_reason(old_format(payload), client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_UNKNOWN


def test_a_dpop_nonce_is_not_a_challenge(oauth_client: Any) -> None:
    """Same key, another salt: neither a real nonce nor a challenge-shaped payload signed as a
    nonce redeems as a challenge."""
    payload, _ = unpack(issue_challenge(oauth_client, "enroll").value)
    for value in (issue_nonce(), dump(Purpose.DPOP_NONCE, payload)):
        assert redeem_reason(value, client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_UNKNOWN
    assert redeem_challenge(signed(payload), client_id="mobile-app", purpose="enroll")  # signed as a challenge: good


def test_other_spellings_of_a_used_value_are_refused(oauth_client: Any) -> None:
    issued = issue_challenge(oauth_client, "enroll")
    redeem_challenge(issued.value, client_id="mobile-app", purpose="enroll")
    middle = len(issued.value) // 2
    for variant in (issued.value + "=", issued.value + "==", issued.value[:middle] + "." + issued.value[middle:]):
        assert redeem_reason(variant, client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_UNKNOWN


def test_value_issued_under_another_secret_key_is_unknown(oauth_client: Any) -> None:
    with override_settings(SECRET_KEY=OTHER_KEY):
        issued = issue_challenge(oauth_client, "enroll")
    assert redeem_reason(issued.value, client_id="mobile-app", purpose="enroll") == Reason.CHALLENGE_UNKNOWN


def test_value_issued_under_a_retiring_secret_key_still_redeems(oauth_client: Any, settings: Any) -> None:
    issued = issue_challenge(oauth_client, "enroll")
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = OTHER_KEY
    assert redeem_challenge(issued.value, client_id="mobile-app", purpose="enroll")


# --------------------------------------------------------------------- shared cache (Redis)
@pytest.fixture
def redis_default_cache(settings: Any) -> Iterator[str]:
    """Point the default cache at Redis under a prefix of this test's own, as production does."""
    prefix = f"vigil-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["REDIS_URL"], "KEY_PREFIX": prefix}
    }
    yield prefix


@pytest.mark.redis
def test_used_mark_in_redis_expires_with_the_challenge(oauth_client: Any, redis_default_cache: str) -> None:
    issued = issue_challenge(oauth_client, "refresh")
    redeem_challenge(issued.value, client_id="mobile-app", purpose="refresh")
    ttl = redis.Redis.from_url(os.environ["REDIS_URL"]).ttl(cache.make_and_validate_key(used_key(issued.value)))
    assert 300 - 2 + USED_MARGIN <= ttl <= 300 + USED_MARGIN


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_concurrent_redemption_succeeds_once(oauth_client: Any, redis_default_cache: str) -> None:
    """Each thread has a Redis client of its own, like separate web processes."""
    issued = issue_challenge(oauth_client, "enroll")

    def redeem(_: int) -> str:
        try:
            redeem_challenge(issued.value, client_id="mobile-app", purpose="enroll")
            return "ok"
        except AttestationError as exc:
            return exc.reason

    results = run_concurrently(8, redeem)
    assert results.count("ok") == 1
    assert set(results) == {"ok", Reason.CHALLENGE_REUSED}
    assert SecurityEvent.objects.filter(reason=Reason.CHALLENGE_REUSED).count() == 7


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
    assert "OAuth-Client-Attestation-Challenge" not in response


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
    refused = SecurityEvent.objects.get(event_type="attestation.challenge", outcome="denied")
    assert refused.reason == "throttled" and refused.details["retry_after"] > 0


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
