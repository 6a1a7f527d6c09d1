"""Property-based: whatever is pushed to the SSF receiver (random bodies, random JWS
headers, random claims correctly signed by the registered transmitter), the answer is 202
or an RFC 8935 §2.3 error, never a 5xx."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions.models import DeviceSession
from shared_signals.models import CaepEvent, SsfTransmitter
from shared_signals.testing import LoopbackTransmitter

AUDIENCE = "https://vigil.example.com/ssf"
ERRORS = {"invalid_request", "invalid_key", "invalid_issuer", "invalid_audience", "authentication_failed",
          "access_denied"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8,
)
subjects = st.one_of(
    json_values,
    st.fixed_dictionaries({"format": st.sampled_from(["opaque", "iss_sub", "email", "complex", "x", ""])},
                          optional={"id": json_values, "sub": json_values, "iss": json_values, "email": json_values,
                                    "session": json_values, "user": json_values, "device": json_values}),
)
events = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from([e.value for e in CaepEvent] + ["urn:x"]),
                    st.dictionaries(st.sampled_from(["current_status", "previous_status", "change_type",
                                                     "credential_type", "reason_admin"]), json_values, max_size=3),
                    max_size=2),
)
claim_overrides = st.fixed_dictionaries({}, optional={
    "iss": json_values, "aud": json_values, "jti": json_values, "iat": json_values, "txn": json_values,
    "sub_id": subjects, "events": events, "exp": json_values,
})


@pytest.fixture
def setup(db: Any, user: Any, mobile_client: Any) -> Any:
    with LoopbackTransmitter() as mdm:
        transmitter = SsfTransmitter.objects.create(name="MDM", issuer=mdm.issuer, jwks=mdm.jwks, audience=AUDIENCE)
        DeviceSession.objects.create(sid="victim", user=user, client=mobile_client.client,
                                     auth_time=timezone.now(), amr=["pwd"])
        yield mdm, transmitter


def _check(response: Any) -> None:
    assert response.status_code in {202, 400}, response.content
    if response.status_code == 400:
        body = response.json()
        assert body["err"] in ERRORS and isinstance(body["description"], str)


def _post(slug: str, body: bytes, content_type: str = "application/secevent+jwt") -> Any:
    return HttpClient().post(reverse("ssf-receive", args=[slug]), data=body, content_type=content_type)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
       content_type=st.sampled_from(["application/secevent+jwt", "application/jwt", "text/plain", ""]),
       slug=st.text(alphabet="abcXYZ019-_", min_size=1, max_size=50))
def test_random_bodies(setup: Any, body: bytes, content_type: str, slug: str) -> None:
    mdm, transmitter = setup
    _check(_post(slug, body, content_type))
    _check(_post(transmitter.slug, body, content_type))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.dictionaries(st.sampled_from(["alg", "typ", "kid", "crit", "jwk", "x5u"]), json_values, max_size=4),
       payload=json_values, signature=st.binary(max_size=80))
def test_random_jws_headers(setup: Any, header: dict[str, Any], payload: Any, signature: bytes) -> None:
    mdm, transmitter = setup
    token = ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()), _b64(signature)])
    _check(_post(transmitter.slug, token.encode()))
    assert DeviceSession.objects.get(sid="victim").status == "active"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=claim_overrides)
def test_random_claims_signed_by_the_transmitter(setup: Any, overrides: dict[str, Any]) -> None:
    mdm, transmitter = setup
    claims = mdm.claims(AUDIENCE, CaepEvent.SESSION_REVOKED.value, {"format": "opaque", "id": "nobody"},
                        iat=int(time.time()))
    claims.update(overrides)
    _check(_post(transmitter.slug, mdm.sign(claims).encode()))
