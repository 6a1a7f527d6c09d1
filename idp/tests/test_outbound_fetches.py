"""Every fetch Vigil makes to a URL a third party registered goes through ``core.outbound``:
the request object by reference (RFC 9101 §5.2), a transmitter's JWKS, a SET push (RFC 8935
§2) and a back-channel logout POST (Back-Channel Logout 1.0 §2.5). Each refuses a name that
resolves to this machine (nothing reaches the real server listening there) and gives up
on a sender that trickles its answer, at its deadline; and the client at /authorize cannot
tell a closed port from a TLS failure (RFC 9101 §10.4.1: no port-scanning oracle)."""

from __future__ import annotations

import ipaddress
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from core.events import EventType
from core.models import SecurityEvent
from idp.backchannel import delivery as logout_delivery
from idp.oauth import par, request_uri_fetch
from sessions.models import AuthorizationCode, DeviceSession
from shared_signals import delivery as set_delivery
from shared_signals import jwks_cache, transmitter
from shared_signals.models import DeliveryStatus, SetDelivery, SsfReceiver
from shared_signals.set_tokens import SetError

from .conftest import SERVICE_REDIRECT, query_of
from .jar_support import authorize_url, keyed_client, request_object, request_params
from .outbound_support import FakeNetwork, answer, certificate, serving, tls_context, trickle

pytestmark = pytest.mark.django_db
NAME = "rp.example"
DEADLINE = 0.6
JAR = "application/oauth-authz-req+jwt"
GENERIC = par.RequestUriProblem.FETCH_FAILED.description


@pytest.fixture
def delivery_to(user: Any, mobile_client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A pending SET delivery to a receiver at ``endpoint`` (not handed to Celery)."""
    monkeypatch.setattr(transmitter, "enqueue", lambda pk: None)
    session = DeviceSession.objects.create(sid="sid-outbound", user=user, client=mobile_client.client,
                                           auth_time=timezone.now(), amr=["pwd"])

    def make(endpoint: str) -> SetDelivery:
        SsfReceiver.objects.create(name="RP", audience="https://rp.example.com/caep", endpoint_url=endpoint)
        [row] = transmitter.emit_session_revoked(session)
        return row

    return make


def _refusals() -> list[tuple[str, str]]:
    events = SecurityEvent.objects.filter(event_type=EventType.OUTBOUND_DESTINATION_REFUSED)
    return [(event.details["purpose"], event.details["address"]) for event in events]


# --- a name that resolves to this machine is refused, and the server there never reached ----------


def _request_uri_answer(browser: Any, client_id: str, request_uri: str) -> dict[str, str]:
    response = browser.get(authorize_url(client_id, request_uri=request_uri, redirect_uri=SERVICE_REDIRECT))
    assert response.status_code == 302 and response["Location"].startswith(SERVICE_REDIRECT), response.content[:300]
    return query_of(response["Location"])


def test_request_uri_on_a_name_for_loopback_is_refused_unfetched(
    browser: Any, network: FakeNetwork, pkce: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cert, key = certificate(tmp_path, [NAME])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with serving(answer(), tls=tls_context(cert, key)) as server:
        network.answers[NAME] = [["127.0.0.1"]]
        url = f"https://{NAME}:{server.port}/object"
        client, signing_key = keyed_client("rebinder", request_uris=[url])
        server.behaviour = answer(200, JAR, request_object(client.client_id, signing_key,
                                                           request_params(client.client_id, pkce)).encode())
        query = _request_uri_answer(browser, client.client_id, url)
    assert (query["error"], query["error_description"]) == ("invalid_request_uri", GENERIC)
    assert server.connections == 0 and not AuthorizationCode.objects.exists()
    assert _refusals() == [("request_uri", "127.0.0.1")]
    assert SecurityEvent.objects.get(event_type=EventType.OUTBOUND_DESTINATION_REFUSED).client_id == "rebinder"
    assert SecurityEvent.objects.filter(event_type=EventType.OAUTH_REQUEST_URI_REFUSED, reason="fetch_failed").exists()


def test_a_jwks_on_a_name_for_loopback_is_refused_unfetched(network: FakeNetwork) -> None:
    with serving(answer(body=b'{"keys": []}')) as server:
        network.answers[NAME] = [["127.0.0.1"]]
        with pytest.raises(SetError) as refused:
            jwks_cache.fetch(f"http://{NAME}:{server.port}/jwks.json", transmitter="MDM")
    assert refused.value.status == 503 and server.connections == 0
    assert _refusals() == [("ssf_jwks", "127.0.0.1")]
    assert SecurityEvent.objects.get(event_type=EventType.OUTBOUND_DESTINATION_REFUSED).details.get("transmitter") == "MDM"


def test_a_set_push_to_a_name_for_loopback_is_refused_for_good(network: FakeNetwork, delivery_to: Any) -> None:
    with serving(answer(202)) as server:
        network.answers[NAME] = [["::ffff:127.0.0.1"]]
        row = delivery_to(f"http://{NAME}:{server.port}/events")
        assert set_delivery.attempt(row.pk, final=False) == DeliveryStatus.REJECTED  # not retried
    assert server.connections == 0
    assert _refusals() == [("ssf_push", str(ipaddress.ip_address("::ffff:127.0.0.1")))]
    assert SecurityEvent.objects.get(event_type=EventType.OUTBOUND_DESTINATION_REFUSED).details.get("receiver") == "RP"


def test_a_logout_post_to_a_name_for_loopback_is_refused_for_good(network: FakeNetwork) -> None:
    with serving(answer(200)) as server:
        network.answers[NAME] = [["127.0.0.1"]]
        result = logout_delivery.post(f"http://{NAME}:{server.port}/logout", "a.b.c", client_id="rp")
    assert (result.delivered, result.retry) == (False, False) and server.connections == 0
    assert _refusals() == [("backchannel_logout", "127.0.0.1")]


# --- a sender that trickles is cut off at the deadline, whatever the fetch -------------------------
# (the request object fetch's own: test_request_uri_fetch_deadline.py)


@pytest.mark.usefixtures("allow_private_outbound")
@pytest.mark.parametrize("stage", ["headers", "body"])
def test_a_trickling_jwks_is_given_up_at_the_deadline(stage: str, settings: Any) -> None:
    settings.IDP_SSF_HTTP_TIMEOUT = DEADLINE
    with serving(trickle(stage)) as server:
        started = time.monotonic()
        with pytest.raises(SetError) as refused:
            jwks_cache.fetch(f"http://127.0.0.1:{server.port}/jwks.json")
        assert time.monotonic() - started < DEADLINE + 0.5
    assert refused.value.status == 503


@pytest.mark.usefixtures("allow_private_outbound")
@pytest.mark.parametrize("stage", ["headers", "body"])
def test_a_trickling_receiver_is_given_up_at_the_deadline_and_retried(stage: str, settings: Any,
                                                                      delivery_to: Any) -> None:
    settings.IDP_SSF_HTTP_TIMEOUT = DEADLINE
    with serving(trickle(stage)) as server:
        row = delivery_to(f"http://127.0.0.1:{server.port}/events")
        started = time.monotonic()
        result = set_delivery.push(row)
        assert time.monotonic() - started < DEADLINE + 0.5
    assert (result.delivered, result.retry) == (False, True) and result.detail.startswith("TooSlow")


@pytest.mark.usefixtures("allow_private_outbound")
@pytest.mark.parametrize("stage", ["headers", "body"])
def test_a_trickling_logout_endpoint_is_given_up_at_the_deadline_and_retried(
    stage: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logout_delivery, "TIMEOUT", DEADLINE)
    with serving(trickle(stage)) as server:
        started = time.monotonic()
        result = logout_delivery.post(f"http://127.0.0.1:{server.port}/logout", "a.b.c")
        assert time.monotonic() - started < DEADLINE + 0.5
    assert (result.delivered, result.retry) == (False, True) and result.detail.startswith("TooSlow")


# --- /authorize tells the client one thing, whatever went wrong --------------------------------------


def _closed_port() -> int:
    probe = socket.create_server(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


@pytest.mark.usefixtures("allow_private_outbound")
def test_a_closed_port_a_tls_failure_and_a_wrong_answer_read_the_same_to_the_client(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "trusted").mkdir()
    (tmp_path / "untrusted").mkdir()
    trusted = tls_context(*certificate(tmp_path / "trusted", [], ["127.0.0.1"]))
    untrusted_context = tls_context(*certificate(tmp_path / "untrusted", [], ["127.0.0.1"]))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "trusted" / "outbound-cert.pem"))
    with serving(answer(200, JAR, b"a.b.c"), tls=untrusted_context) as untrusted, \
            serving(answer(200, JAR, b"a.b.c")) as plain, serving(trickle("headers", JAR), tls=trusted) as slow:
        urls = [f"https://127.0.0.1:{_closed_port()}/object", f"https://127.0.0.1:{untrusted.port}/object",
                f"https://127.0.0.1:{plain.port}/object", f"https://127.0.0.1:{slow.port}/object"]
        client, _ = keyed_client("scanner", request_uris=urls)
        monkeypatch.setattr(request_uri_fetch, "DEADLINE", DEADLINE)
        answers = [_request_uri_answer(browser, client.client_id, url) for url in urls]
    assert {(query["error"], query["error_description"]) for query in answers} == {("invalid_request_uri", GENERIC)}
    assert untrusted.connections == plain.connections == slow.connections == 1  # each was really tried
    logged = [event.details["description"] for event in SecurityEvent.objects.filter(
        event_type=EventType.OAUTH_REQUEST_URI_REFUSED).order_by("pk")]
    assert len(set(logged)) == 4 and "too slow" in logged  # the operator's log keeps the difference
    assert not AuthorizationCode.objects.exists()
