"""Whose failure each of Google's ``decodeIntegrityToken`` refusals is (``google_errors``):
every error body Google sends, served by the stand-in, with and without proof that our
credentials decode this package's tokens."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from attestation.android import decodes_seen
from attestation.android.google_errors import Fault, classify
from attestation.android.play_integrity import IntegrityPolicy
from attestation.android.play_integrity_api import (
    PlayIntegrityClient,
    ServiceAccount,
    verify_standard_token,
)
from attestation.errors import AttestationError, Reason
from attestation.testing import google_pki as g
from attestation.testing.google_pki import DecodeError
from tests.cache_outage import redis_unreachable

from .test_play_integrity_api import client, google  # noqa: F401 - the fixtures, by name

pytestmark = pytest.mark.live
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
HASH = "cmVxdWVzdC1oYXNo"
POLICY = IntegrityPolicy(package_name=g.TEST_PACKAGE, signing_cert_digests=(g.TEST_SIGNING_DIGEST,))
INVALID, UNAVAILABLE = Reason.INTEGRITY_TOKEN_INVALID, Reason.INTEGRITY_API_UNAVAILABLE

#: Each answer -> (the reason with no decode of this package lately, the reason right after one).
EXPECTED = {
    DecodeError.INVALID_TOKEN: (INVALID, INVALID),
    DecodeError.APP_NOT_FOUND: (INVALID, INVALID),  # the same body as a bad token (google_errors)
    DecodeError.FOREIGN_TOKEN: (UNAVAILABLE, INVALID),
    DecodeError.UNTRUSTED_PACKAGE: (UNAVAILABLE, INVALID),
    DecodeError.CALLER_LACKS_PERMISSION: (UNAVAILABLE, INVALID),  # IAM's shape without an ErrorInfo
    DecodeError.PROXY_FORBIDDEN: (UNAVAILABLE, INVALID),
    DecodeError.SERVICE_DISABLED: (UNAVAILABLE, UNAVAILABLE),
    DecodeError.API_NOT_CONFIGURED: (UNAVAILABLE, UNAVAILABLE),
    DecodeError.BILLING_DISABLED: (UNAVAILABLE, UNAVAILABLE),
    DecodeError.IAM_PERMISSION_DENIED: (UNAVAILABLE, UNAVAILABLE),
    DecodeError.SCOPE_INSUFFICIENT: (UNAVAILABLE, UNAVAILABLE),
    DecodeError.UNAUTHENTICATED: (UNAVAILABLE, UNAVAILABLE),
    DecodeError.NOT_FOUND: (UNAVAILABLE, UNAVAILABLE),
    DecodeError.QUOTA: (UNAVAILABLE, UNAVAILABLE),
    DecodeError.INTERNAL: (UNAVAILABLE, UNAVAILABLE),
    DecodeError.UNAVAILABLE: (UNAVAILABLE, UNAVAILABLE),
}


def refusal(client: PlayIntegrityClient, token: str, now: dt.datetime = NOW, package: str = g.TEST_PACKAGE) -> str:
    with pytest.raises(AttestationError) as info:
        client.decode(package, token, now)
    return info.value.reason


def decoded(google: g.GoogleStandIn, client: PlayIntegrityClient, at: dt.datetime = NOW, **forge: Any) -> None:
    """A genuine token of the package decodes and passes: our credentials work for it."""
    token = f"good-{at.timestamp()}"
    google.record(token, g.make_verdict(timestamp_ms=str(int(at.timestamp() * 1000)), request_hash=HASH, **forge))
    verify_standard_token(token, policy=POLICY, expected_request_hash=HASH, now=at, client=client)


def test_every_answer_is_listed() -> None:
    assert set(EXPECTED) == set(DecodeError)


@pytest.mark.parametrize("error", list(DecodeError), ids=lambda e: e.name)
def test_whose_failure_each_answer_is(google: g.GoogleStandIn, client: PlayIntegrityClient, error: Any) -> None:
    cold, warm = EXPECTED[error]
    assert refusal(client, google.refuse("t1", error)) == cold
    decoded(google, client)
    assert refusal(client, google.refuse("t2", error), NOW + dt.timedelta(seconds=1)) == warm


def test_another_projects_token_counts_only_while_these_credentials_decode(
    google: g.GoogleStandIn, client: PlayIntegrityClient
) -> None:
    """The proof is for this package, these credentials and ``decoded_within`` (600 s)."""
    foreign = google.refuse("foreign")
    decoded(google, client)
    assert refusal(client, foreign, NOW + dt.timedelta(seconds=600)) == INVALID
    assert refusal(client, foreign, NOW + dt.timedelta(seconds=601)) == UNAVAILABLE
    assert refusal(client, foreign, NOW, package="com.example.other") == UNAVAILABLE
    other_account = ServiceAccount.from_json({**google.credentials(), "client_email": "x@other.iam.gserviceaccount.com"})
    assert refusal(PlayIntegrityClient(other_account, google.url), foreign, NOW) == UNAVAILABLE
    short = PlayIntegrityClient(client.account, google.url, decoded_within=dt.timedelta(seconds=5))
    assert refusal(short, foreign, NOW + dt.timedelta(seconds=6)) == UNAVAILABLE


@pytest.mark.parametrize(("forge", "passes"), [
    ({"cert_digests": (b"\x01" * 32,)}, False),  # a build signed with another key
    ({"request_hash": "another-request"}, False),
    ({"app_verdict": "UNEVALUATED", "cert_digests": None}, True),  # passes, naming no certificate
], ids=["foreign-signer", "wrong-request", "no-certificate"])
def test_only_a_genuine_decode_shows_our_credentials_work(
    google: g.GoogleStandIn, client: PlayIntegrityClient, forge: dict[str, Any], passes: bool
) -> None:
    """A wrongly configured service account may decode some token (one minted for its own
    project): unless that token is our app's, signed with a registered key, and passes, it
    makes no refusal the device's."""
    lenient = IntegrityPolicy(package_name=g.TEST_PACKAGE, signing_cert_digests=(g.TEST_SIGNING_DIGEST,),
                              min_level=None, require_play_recognized=False)
    forge = {"request_hash": HASH, "cert_digests": (g.TEST_SIGNING_DIGEST,), **forge}
    digests = forge.pop("cert_digests")
    verdict = g.make_verdict(timestamp_ms=str(int(NOW.timestamp() * 1000)), cert_digests=digests or (), **forge)
    if digests is None:
        del verdict["appIntegrity"]["certificateSha256Digest"]  # Google omits it for UNEVALUATED
    google.record("decodable", verdict)
    try:
        verify_standard_token("decodable", policy=lenient, expected_request_hash=HASH, now=NOW, client=client)
        outcome = True
    except AttestationError:
        outcome = False
    assert outcome is passes and not client.decodes(g.TEST_PACKAGE, NOW)
    assert refusal(client, google.refuse("foreign"), NOW + dt.timedelta(seconds=1)) == UNAVAILABLE


def test_a_refusal_proves_nothing_and_the_detail_says_why(google: g.GoogleStandIn, client: PlayIntegrityClient) -> None:
    google.decode_fails_with = DecodeError.FOREIGN_TOKEN  # every token: our credentials are of another project
    for _ in range(2):
        with pytest.raises(AttestationError) as info:
            client.decode(g.TEST_PACKAGE, "any", NOW)
        assert info.value.reason == UNAVAILABLE
    assert info.value.detail == (
        "decodeIntegrityToken refused: HTTP 403 PERMISSION_DENIED forbidden, and no genuine token of this package "
        "decoded in 600 s"
    )
    assert not client.decodes(g.TEST_PACKAGE, NOW)


@pytest.mark.parametrize(("error", "fix"), [
    (DecodeError.SERVICE_DISABLED, "enable the Google Play Integrity API (playintegrity.googleapis.com)"),
    (DecodeError.BILLING_DISABLED, "enable billing"),
    (DecodeError.SCOPE_INSUFFICIENT, "https://www.googleapis.com/auth/playintegrity scope"),
    (DecodeError.FOREIGN_TOKEN, "belongs to the Cloud project linked to this package in Play Console"),
])
def test_a_configuration_refusal_tells_the_operator_what_to_fix(
    google: g.GoogleStandIn, client: PlayIntegrityClient, caplog: pytest.LogCaptureFixture, error: Any, fix: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="vigil.play_integrity"):
        assert refusal(client, google.refuse("t", error)) == UNAVAILABLE
    [entry] = [r for r in caplog.records if r.name == "vigil.play_integrity"]
    assert entry.levelno == logging.ERROR and fix in entry.getMessage()
    assert g.TEST_PACKAGE in entry.getMessage() and client.account.client_email in entry.getMessage()
    assert "503 integrity_api_unavailable" in entry.getMessage()


def test_quota_is_a_warning_and_a_token_refusal_is_not_logged(
    google: g.GoogleStandIn, client: PlayIntegrityClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="vigil.play_integrity"):
        assert refusal(client, google.refuse("q", DecodeError.QUOTA)) == UNAVAILABLE
        assert refusal(client, "never-recorded") == INVALID  # its security event is its record
    [entry] = [r for r in caplog.records if r.name == "vigil.play_integrity"]
    assert entry.levelno == logging.WARNING and "request a higher daily quota" in entry.getMessage()


def test_a_refused_bearer_is_exchanged_again(google: g.GoogleStandIn, client: PlayIntegrityClient) -> None:
    decoded(google, client)
    google.access_tokens.clear()  # Google forgot it (revoked, expired early)
    assert refusal(client, "t") == UNAVAILABLE
    decoded(google, client, NOW + dt.timedelta(seconds=1))
    assert [path for _, path, _ in google.requests].count("/token") == 2


@pytest.mark.parametrize(("status", "body", "fault"), [
    (403, None, Fault.TOKEN_OR_CONFIGURATION),
    (403, [], Fault.TOKEN_OR_CONFIGURATION),
    (403, {"error": "forbidden"}, Fault.TOKEN_OR_CONFIGURATION),
    (403, {"error": {"details": "x", "errors": [1, None], "status": 7}}, Fault.TOKEN_OR_CONFIGURATION),
    (400, {"error": {"details": [{"@type": "other", "reason": "SERVICE_DISABLED", "domain": "googleapis.com"}]}},
     Fault.TOKEN),
    (403, {"error": {"status": "PERMISSION_DENIED", "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SOMETHING_NEW", "domain": "googleapis.com"}]}},
     Fault.CONFIGURATION),
    (403, {"error": {"status": "PERMISSION_DENIED", "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "NEW", "domain": "playintegrity.googleapis.com"}]}},
     Fault.TOKEN_OR_CONFIGURATION),
    (502, None, Fault.GOOGLE),
    (418, {"error": {"status": "DEADLINE_EXCEEDED"}}, Fault.GOOGLE),
])
def test_bodies_google_never_documented_fall_back_safely(status: int, body: Any, fault: Fault) -> None:
    """No shape raises; an ErrorInfo counts only when it is one; unknown Service Infrastructure
    reasons are ours; an unknown service reason is undecided like any 403."""
    assert classify(status, body).fault is fault


# --- the decodes seen, shared between processes (decodes_seen) ---------------------------------
def test_another_processs_genuine_decode_makes_the_refusal_the_devices(
    google: g.GoogleStandIn, client: PlayIntegrityClient
) -> None:
    """A fresh worker (here: this process's memory forgotten) knows from the shared cache that
    our credentials decode genuine tokens, and counts another project's token against the device."""
    foreign = google.refuse("foreign")
    decoded(google, client)
    decodes_seen.forget_local()
    assert refusal(client, foreign, NOW + dt.timedelta(seconds=30)) == INVALID
    assert refusal(client, foreign, NOW + dt.timedelta(seconds=601)) == UNAVAILABLE  # the window still holds


def test_the_shared_cache_is_told_a_few_times_per_window(google: g.GoogleStandIn, client: PlayIntegrityClient) -> None:
    """Decodes within a quarter of the window after the one shared are this process's alone: the
    hot path pays no cache write for them (a fresh worker sees the window end up to that early)."""
    foreign = google.refuse("foreign")
    decoded(google, client)
    decoded(google, client, at=NOW + dt.timedelta(seconds=100))
    assert refusal(client, foreign, NOW + dt.timedelta(seconds=650)) == INVALID  # this process: 550 s ago
    decodes_seen.forget_local()
    assert refusal(client, foreign, NOW + dt.timedelta(seconds=650)) == UNAVAILABLE  # shared: 650 s ago


def test_the_cache_down_leaves_the_processs_own_memory_to_decide(
    google: g.GoogleStandIn, client: PlayIntegrityClient
) -> None:
    foreign = google.refuse("foreign")
    with redis_unreachable():
        decoded(google, client)  # sharing fails quietly: the decode itself succeeded
        assert refusal(client, foreign, NOW + dt.timedelta(seconds=1)) == INVALID
        decodes_seen.forget_local()
        assert refusal(client, foreign, NOW + dt.timedelta(seconds=1)) == UNAVAILABLE  # nothing known: an outage
