"""The ``decodeIntegrityToken`` client against a local stand-in of Google on 127.0.0.1:
service-account JWT -> bearer exchange, recorded verdicts, and the failure mapping."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from attestation.android.play_integrity import IntegrityPolicy
from attestation.android.play_integrity_api import (
    SCOPE,
    PlayIntegrityClient,
    ServiceAccount,
    clear_caches,
    verify_standard_token,
)
from attestation.errors import AttestationError, Reason
from attestation.testing import google_pki as g

pytestmark = pytest.mark.live
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
HASH = "cmVxdWVzdC1oYXNo"
POLICY = IntegrityPolicy(package_name=g.TEST_PACKAGE, signing_cert_digests=(g.TEST_SIGNING_DIGEST,))
VECTORS = Path(__file__).parent / "vectors" / "playintegrity"


@pytest.fixture
def google() -> Iterator[g.GoogleStandIn]:
    clear_caches()
    with g.GoogleStandIn() as stand_in:
        yield stand_in
    clear_caches()


@pytest.fixture
def client(google: g.GoogleStandIn) -> PlayIntegrityClient:
    return PlayIntegrityClient(ServiceAccount.from_json(google.credentials()), google.url, timeout=5)


def record(google: g.GoogleStandIn, token: str = "std-token", **forge: Any) -> str:
    forge.setdefault("timestamp_ms", str(int(NOW.timestamp() * 1000) - 1500))
    forge.setdefault("request_hash", HASH)
    google.record(token, g.make_verdict(**forge))
    return token


def test_standard_token_is_decoded_by_the_api(google: g.GoogleStandIn, client: PlayIntegrityClient) -> None:
    result = verify_standard_token(record(google), policy=POLICY, expected_request_hash=HASH, now=NOW, client=client)
    assert result.facts["request_kind"] == "request_hash"
    paths = [path for _, path, _ in google.requests]
    assert paths == ["/token", f"/v1/{g.TEST_PACKAGE}:decodeIntegrityToken"]
    assert google.requests[1][2]["authorization"].startswith("Bearer ya29.test-")
    assert google.requests[1][2]["content-type"] == "application/json"


def test_bearer_is_cached_until_it_expires(google: g.GoogleStandIn, client: PlayIntegrityClient) -> None:
    token = record(google)
    for _ in range(3):
        verify_standard_token(token, policy=POLICY, expected_request_hash=HASH, now=NOW, client=client)
    assert [p for _, p, _ in google.requests].count("/token") == 1
    later = NOW + dt.timedelta(seconds=3599)
    record(google, "later", timestamp_ms=str(int(later.timestamp() * 1000)))
    verify_standard_token("later", policy=POLICY, expected_request_hash=HASH, now=later, client=client)
    assert [p for _, p, _ in google.requests].count("/token") == 2


def test_service_account_assertion_claims(google: g.GoogleStandIn) -> None:
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    account = ServiceAccount.from_json(google.credentials())
    decoded = jwt.decode(account.assertion(NOW), RSAKey.import_key(account.private_key_pem), algorithms=["RS256"])
    assert decoded.header == {"alg": "RS256", "typ": "JWT", "kid": "test-key-1"}
    assert decoded.claims["scope"] == SCOPE and decoded.claims["aud"] == f"{google.url}/token"
    assert decoded.claims["exp"] - decoded.claims["iat"] == 3600


def test_credentials_from_file_or_json_and_token_uri_override(
    settings: Any, tmp_path: Path, google: g.GoogleStandIn
) -> None:
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(google.credentials()))
    settings.ATTESTATION_PLAY_INTEGRITY_CREDENTIALS = str(path)
    settings.ATTESTATION_PLAY_INTEGRITY_API_BASE_URL = google.url + "/"
    settings.ATTESTATION_PLAY_INTEGRITY_TOKEN_URI = "http://127.0.0.1:9/elsewhere"
    client = PlayIntegrityClient.from_settings()
    assert client.base_url == google.url and client.account.token_uri.endswith("/elsewhere")
    settings.ATTESTATION_PLAY_INTEGRITY_TOKEN_URI = ""
    settings.ATTESTATION_PLAY_INTEGRITY_CREDENTIALS = json.dumps(google.credentials())
    result = verify_standard_token(record(google), policy=POLICY, expected_request_hash=HASH, now=NOW)
    assert result.facts["app_recognition_verdict"] == "PLAY_RECOGNIZED"


def test_no_credentials_means_api_unavailable(settings: Any) -> None:
    settings.ATTESTATION_PLAY_INTEGRITY_CREDENTIALS = ""
    with pytest.raises(AttestationError) as info:
        verify_standard_token("tok", policy=POLICY, expected_request_hash=HASH, now=NOW)
    assert info.value.reason == Reason.INTEGRITY_API_UNAVAILABLE


def test_unknown_token_is_invalid(client: PlayIntegrityClient) -> None:
    with pytest.raises(AttestationError) as info:
        verify_standard_token("forged", policy=POLICY, expected_request_hash=HASH, now=NOW, client=client)
    assert info.value.reason == Reason.INTEGRITY_TOKEN_INVALID


@pytest.mark.parametrize("status", [429, 500, 503])
def test_quota_and_outages_are_api_unavailable(
    google: g.GoogleStandIn, client: PlayIntegrityClient, status: int
) -> None:
    token = record(google)
    google.fail_with = status
    with pytest.raises(AttestationError) as info:
        verify_standard_token(token, policy=POLICY, expected_request_hash=HASH, now=NOW, client=client)
    assert info.value.reason == Reason.INTEGRITY_API_UNAVAILABLE


def test_unreachable_api_is_unavailable(google: g.GoogleStandIn) -> None:
    account = ServiceAccount.from_json(google.credentials(), token_uri="http://127.0.0.1:9/token")
    client = PlayIntegrityClient(account, "http://127.0.0.1:9", timeout=1)
    with pytest.raises(AttestationError) as info:
        verify_standard_token("t", policy=POLICY, expected_request_hash=HASH, now=NOW, client=client)
    assert info.value.reason == Reason.INTEGRITY_API_UNAVAILABLE


def test_rejected_service_account_is_unavailable(google: g.GoogleStandIn, caplog: Any) -> None:
    """A key Google does not know (invalid_grant) is our configuration problem, not the device's,
    and the log tells an operator which key and what to check."""
    account = ServiceAccount.from_json(google.credentials())
    account = ServiceAccount(account.client_email, _other_key_pem(), account.private_key_id, account.token_uri)
    with caplog.at_level("ERROR", logger="vigil.play_integrity"), pytest.raises(AttestationError) as info:
        PlayIntegrityClient(account, google.url).decode(g.TEST_PACKAGE, "t", NOW)
    assert info.value.reason == Reason.INTEGRITY_API_UNAVAILABLE
    [line] = caplog.records
    assert line.levelname == "ERROR" and account.client_email in line.getMessage()
    assert "invalid_grant" in line.getMessage() and "still exists and is enabled" in line.getMessage()
    assert [path for _, path, _ in google.requests] == ["/token"]  # no decode without a bearer


def _other_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_verdict_checks_apply_to_decoded_verdicts(google: g.GoogleStandIn, client: PlayIntegrityClient) -> None:
    token = record(google, device_verdicts=("MEETS_BASIC_INTEGRITY",))
    with pytest.raises(AttestationError) as info:
        verify_standard_token(token, policy=POLICY, expected_request_hash=HASH, now=NOW, client=client)
    assert info.value.reason == Reason.INTEGRITY_VERDICT_INSUFFICIENT
    with pytest.raises(AttestationError) as info:
        verify_standard_token(
            record(google, "t2"), policy=POLICY, expected_request_hash="other", now=NOW, client=client
        )
    assert info.value.reason == Reason.REQUEST_HASH_MISMATCH


def test_recorded_docs_verdict_served_by_the_stand_in(google: g.GoogleStandIn, client: PlayIntegrityClient) -> None:
    docs = json.loads((VECTORS / "google-docs-example-verdict-standard.json").read_text())
    google.record("docs-token", docs["verdict"])
    result = verify_standard_token(
        "docs-token",
        policy=IntegrityPolicy(package_name="com.package.name"),
        expected_request_hash="aGVsbG8gd29scmQgdGhlcmU",
        now=dt.datetime(2023, 2, 6, 3, 43, 40, tzinfo=UTC),
        client=client,
    )
    assert result.facts["device_recognition_verdict"] == ["MEETS_DEVICE_INTEGRITY"]


@pytest.mark.parametrize("token", ["", "   ", "x" * 70000])
def test_empty_or_huge_tokens_never_reach_google(
    google: g.GoogleStandIn, client: PlayIntegrityClient, token: str
) -> None:
    with pytest.raises(AttestationError) as info:
        verify_standard_token(token, policy=POLICY, expected_request_hash=HASH, now=NOW, client=client)
    assert info.value.reason == Reason.MALFORMED_TOKEN and google.requests == []


class _Answering(requests.Session):
    """Google's answers replaced, per path ending, by raw bytes (a broken proxy, a changed API);
    everything else goes to the stand-in."""

    def __init__(self, answers: dict[str, tuple[int, bytes]]) -> None:
        super().__init__()
        self.answers, self.answered = answers, 0

    def post(self, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        for ending, (status, body) in self.answers.items():
            if str(url).endswith(ending):
                self.answered += 1
                response = requests.Response()
                response.status_code, response._content = status, body
                return response
        return super().post(url, *args, **kwargs)


@pytest.mark.parametrize("status", [200, 403])
def test_json_nested_too_deep_is_an_unreadable_answer_not_a_500(google: g.GoogleStandIn, status: int) -> None:
    """Deeply nested JSON makes the parser raise RecursionError, no ValueError."""
    answers = {":decodeIntegrityToken": (status, b"[" * 100_000)}
    client = PlayIntegrityClient(ServiceAccount.from_json(google.credentials()), google.url, session=_Answering(answers))
    with pytest.raises(AttestationError) as info:
        client.decode(g.TEST_PACKAGE, record(google), NOW)
    assert info.value.reason == Reason.INTEGRITY_API_UNAVAILABLE  # no verdict; an unreadable 403 decides nothing


@pytest.mark.parametrize(("expires_in", "lifetime"), [
    (b'"soon"', 3600), (b"1e400", 3600), (b"null", 3600), (b"99999999999999999999", 3600), (b"120", 120), (b"-5", 0),
])
def test_a_bearer_whatever_its_expires_in_says(google: g.GoogleStandIn, expires_in: bytes, lifetime: int) -> None:
    """A lifetime that is no whole number is the hour a service-account bearer lives; none is
    cached for longer, or for less than nothing."""
    body = b'{"access_token": "ya29.odd", "expires_in": ' + expires_in + b"}"
    session = _Answering({"/token": (200, body)})
    client = PlayIntegrityClient(ServiceAccount.from_json(google.credentials()), google.url, session=session)
    assert client.access_token(NOW) == "ya29.odd"
    client.access_token(NOW + dt.timedelta(seconds=max(0, lifetime - 61)))  # REFRESH_MARGIN before its end
    assert session.answered == (1 if lifetime > 60 else 2)
