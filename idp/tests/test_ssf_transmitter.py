"""Shared Signals transmitter: SETs (RFC 8417) per SSF 1.0 / CAEP 1.0, queued per receiver,
pushed per RFC 8935 by the Celery task, verified by a loopback receiver against our JWKS."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import jwt as pyjwt
import pytest
from django.urls import reverse
from django.utils import timezone

from idp.tests.conftest import form_post
from sessions.models import DeviceSession
from shared_signals import delivery, tasks, transmitter
from shared_signals.models import CaepEvent, DeliveryStatus, SetDelivery, SsfReceiver
from shared_signals.testing import LoopbackReceiver
from vigil.schedule import beat_schedule

#: The receivers are on 127.0.0.1, which core.outbound refuses unless told otherwise.
pytestmark = pytest.mark.usefixtures("allow_private_outbound")

ISSUER = "http://localhost:8000"
AUDIENCE = "https://rp.example.com/caep"


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Deliveries handed to Celery (collected instead of reaching the broker)."""
    pks: list[int] = []
    monkeypatch.setattr(transmitter, "enqueue", pks.append)
    return pks


@pytest.fixture
def receiver_factory(db: Any) -> Any:
    def make(endpoint: str = "http://127.0.0.1:9/events", **fields: Any) -> SsfReceiver:
        header = fields.pop("authorization", "")
        receiver = SsfReceiver(name=fields.pop("name", "RP"), audience=fields.pop("audience", AUDIENCE),
                               endpoint_url=endpoint, **fields)
        receiver.set_authorization_header(header)
        receiver.full_clean()
        receiver.save()
        return receiver

    return make


@pytest.fixture
def session(user: Any, mobile_client: Any) -> DeviceSession:
    return DeviceSession.objects.create(sid="sid-" + "a" * 20, user=user, client=mobile_client.client,
                                        auth_time=timezone.now(), amr=["pwd"])


def jwks_verifier(jwks_url: str, audience: str = AUDIENCE) -> Any:
    """What a relying service does: PyJWT against our published JWKS, explicit algorithms."""
    client = pyjwt.PyJWKClient(jwks_url, cache_keys=False)

    def verify(token: str) -> dict[str, Any]:
        header = pyjwt.get_unverified_header(token)
        assert header["typ"] == "secevent+jwt"
        key = client.get_signing_key_from_jwt(token)
        return pyjwt.decode(token, key.key, algorithms=["ES256"], audience=audience, issuer=ISSUER,
                            options={"require": ["iat", "jti"]})

    return verify


# --- SSF 1.0 §"Transmitter Configuration Metadata" -----------------------------------------


def test_configuration_document(client: Any, db: Any) -> None:
    response = client.get("/.well-known/ssf-configuration")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "spec_version": "1_0",
        "issuer": ISSUER,
        "jwks_uri": f"{ISSUER}/jwks.json",
        "delivery_methods_supported": ["urn:ietf:rfc:8935"],
    }
    assert client.get(reverse("jwks")).status_code == 200  # the jwks_uri is served


# --- emit: one row per interested receiver, enqueued on commit -------------------------------


def test_revoked_session_queues_one_set_per_interested_receiver(
    session: DeviceSession, receiver_factory: Any, mobile_client: Any, service_client: Any,
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sessions.flows.tokens import revoke_session

    wanted = receiver_factory(name="all")
    scoped = receiver_factory(name="mobile", audience="https://m.example.com", client=mobile_client.client)
    receiver_factory(name="other client", client=service_client.client)
    receiver_factory(name="no session events", events_requested=[CaepEvent.CREDENTIAL_CHANGE.value])
    receiver_factory(name="disabled", enabled=False)
    enqueued: list[int] = []
    monkeypatch.setattr(transmitter, "enqueue", enqueued.append)
    with django_capture_on_commit_callbacks(execute=True):
        revoke_session(session, "revoked_by_admin")
        assert enqueued == []  # only once the transaction commits
    rows = list(SetDelivery.objects.order_by("pk"))
    assert {r.receiver for r in rows} == {wanted, scoped}
    assert sorted(enqueued) == [r.pk for r in rows]
    claims = rows[0].claims
    assert set(claims) == {"iss", "jti", "iat", "aud", "sub_id", "events"}  # no sub, no exp (SSF 1.0)
    assert claims["iss"] == ISSUER and claims["jti"] == rows[0].jti
    assert claims["sub_id"] == {
        "format": "complex",
        "session": {"format": "opaque", "id": session.sid},
        "user": {"format": "iss_sub", "iss": ISSUER, "sub": session.user.get_user_id()},
    }
    event = claims["events"][CaepEvent.SESSION_REVOKED.value]
    assert event["initiating_entity"] == "admin" and event["reason_admin"] == {"en": "revoked_by_admin"}
    assert isinstance(event["event_timestamp"], int)
    assert {rows[0].claims["aud"], rows[1].claims["aud"]} == {AUDIENCE, "https://m.example.com"}
    assert rows[0].jti != rows[1].jti


def test_rolled_back_revocation_sends_nothing(session: DeviceSession, receiver_factory: Any,
                                              queued: list[int], django_capture_on_commit_callbacks: Any) -> None:
    from django.db import transaction

    from sessions.flows.tokens import revoke_session

    receiver_factory()
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                revoke_session(session, "revoked_by_admin")
                raise RuntimeError("caller fails after revoking")
    assert not SetDelivery.objects.exists() and queued == []


def test_no_receivers_costs_one_query(session: DeviceSession, django_assert_num_queries: Any) -> None:
    from sessions.flows.revocation import revoke_session

    # savepoint, lock, 3 updates (session, refresh, access tokens), the event row, one receiver
    # lookup, release
    with django_assert_num_queries(8):
        revoke_session(session, "x")


def test_credential_change_and_device_compliance_helpers(user: Any, receiver_factory: Any, queued: list[int],
                                                         session: DeviceSession, mobile_client: Any) -> None:
    receiver_factory()
    [row] = transmitter.emit_credential_change(user, credential_type="password", change_type="update",
                                               reason_admin="password reset")
    event = row.claims["events"][CaepEvent.CREDENTIAL_CHANGE.value]
    assert event["credential_type"] == "password" and event["change_type"] == "update"
    assert row.claims["sub_id"] == {"format": "iss_sub", "iss": ISSUER, "sub": user.get_user_id()}
    with pytest.raises(ValueError):
        transmitter.emit_credential_change(user, credential_type="magic", change_type="update")
    device = _device(mobile_client.client)
    [row] = transmitter.emit_device_compliance_change(device, previous_status="compliant",
                                                      current_status="not-compliant", reason_admin="rooted")
    assert row.claims["sub_id"] == {"format": "complex", "device": {"format": "opaque", "id": device.key_id}}
    assert row.claims["events"][CaepEvent.DEVICE_COMPLIANCE_CHANGE.value]["current_status"] == "not-compliant"
    with pytest.raises(ValueError):
        transmitter.emit_device_compliance_change(device, previous_status="ok", current_status="not-compliant")


def _device(client: Any, key_id: str = "a2V5LWlk") -> Any:
    from attestation.models import Device, RegisteredApp

    app, _ = RegisteredApp.objects.get_or_create(client=client, platform="ios",
                                                 defaults={"ios_team_id": "ABCDE12345", "ios_bundle_id": "com.ex"})
    return Device.objects.create(platform="ios", app=app, key_id=key_id, public_key="-",
                                 security_level="secure_enclave")


def test_user_level_events_reach_a_client_scoped_receiver_only_for_its_users(
    user: Any, receiver_factory: Any, queued: list[int], mobile_client: Any, service_client: Any,
    session: DeviceSession,
) -> None:
    receiver_factory(client=service_client.client)
    assert transmitter.emit_credential_change(user, credential_type="password", change_type="update") == []
    receiver_factory(name="mobile", client=mobile_client.client)
    assert len(transmitter.emit_credential_change(user, credential_type="password", change_type="update")) == 1


def test_authorization_header_is_encrypted_at_rest(receiver_factory: Any) -> None:
    receiver = receiver_factory(authorization="Bearer s3cret-token")
    stored = SsfReceiver.objects.get(pk=receiver.pk)
    assert "s3cret" not in stored.authorization_header_encrypted
    assert stored.authorization_header() == "Bearer s3cret-token"


def test_endpoint_must_be_https_outside_development(settings: Any) -> None:
    from django.core.exceptions import ValidationError

    settings.DEBUG, settings.TESTING = False, False
    with pytest.raises(ValidationError):
        SsfReceiver(name="x", audience="a", endpoint_url="http://rp.example.com/events").full_clean()


# --- delivery: RFC 8935 push, verified against our JWKS on a live server ---------------------


def test_pushed_set_verifies_against_our_jwks(live_server: Any, session: DeviceSession, receiver_factory: Any,
                                              queued: list[int]) -> None:
    from sessions.flows.tokens import revoke_session

    with LoopbackReceiver(verify=jwks_verifier(f"{live_server.url}/jwks.json")) as rp:
        receiver_factory(rp.endpoint, authorization="Bearer rp-secret")
        revoke_session(session, "refresh_token_reuse")
        [pk] = queued
        assert tasks.deliver_security_event(pk) == "delivered"
        [push] = rp.pushes
    assert push.status == 202
    assert push.headers["Content-Type"] == "application/secevent+jwt"
    assert push.headers["Authorization"] == "Bearer rp-secret"
    assert push.claims is not None and push.claims["sub_id"]["session"]["id"] == session.sid
    assert push.claims["events"][CaepEvent.SESSION_REVOKED.value]["initiating_entity"] == "policy"
    row = SetDelivery.objects.get(pk=pk)
    assert (row.status, row.attempts, row.last_error) == (DeliveryStatus.DELIVERED, 1, "")


def test_revocation_through_the_revocation_endpoint_reaches_the_receiver(
    live_server: Any, tokens: dict[str, Any], mobile_client: Any, receiver_factory: Any, queued: list[int],
) -> None:
    from django.test import Client as HttpClient

    with LoopbackReceiver(verify=jwks_verifier(f"{live_server.url}/jwks.json")) as rp:
        receiver_factory(rp.endpoint)
        response = form_post(HttpClient(), reverse("revoke"), {"token": tokens["refresh_token"],
                                                               "client_id": mobile_client.client.client_id})
        assert response.status_code == 200
        [pk] = queued
        tasks.deliver_security_event(pk)
        [push] = rp.pushes
    sid = DeviceSession.objects.get().sid
    assert push.status == 202 and push.claims["sub_id"]["session"]["id"] == sid  # type: ignore[index]
    assert push.claims["events"][CaepEvent.SESSION_REVOKED.value]["initiating_entity"] == "user"  # type: ignore[index]


def test_server_error_is_retried_then_delivered_once(session: DeviceSession, receiver_factory: Any,
                                                     queued: list[int]) -> None:
    with LoopbackReceiver(statuses=[500, 503, 202]) as rp:
        receiver_factory(rp.endpoint)
        [row] = transmitter.emit_session_revoked(session)
        for attempt in range(2):
            with pytest.raises(delivery.DeliveryRetry):
                tasks.deliver_security_event(row.pk)
            row.refresh_from_db()
            assert (row.status, row.attempts) == (DeliveryStatus.PENDING, attempt + 1)
            assert row.last_error.startswith("50")
        assert tasks.deliver_security_event(row.pk) == "delivered"
        assert tasks.deliver_security_event(row.pk) == "delivered"  # idempotent: no second POST
        assert [p.status for p in rp.pushes] == [500, 503, 202]
    jtis = {json.loads(_payload(p.body))["jti"] for p in rp.pushes}
    assert jtis == {row.jti}  # every attempt carries the same jti


def _payload(token: bytes) -> bytes:
    import base64

    segment = token.split(b".")[1]
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def test_celery_retries_with_exponential_backoff(session: DeviceSession, receiver_factory: Any,
                                                 queued: list[int]) -> None:
    """Eager Celery runs the autoretry chain in-process: two 500s, then 202."""
    task: Any = tasks.deliver_security_event  # autoretry options are set by the decorator, not in the stubs
    assert task.retry_backoff == 2 and task.retry_jitter and task.max_retries == 8
    assert task.autoretry_for == (delivery.DeliveryRetry,)
    with LoopbackReceiver(statuses=[500, 500, 202]) as rp:
        receiver_factory(rp.endpoint)
        [row] = transmitter.emit_session_revoked(session)
        result = task.apply(args=[row.pk])
    assert result.get() == "delivered"
    row.refresh_from_db()
    assert (row.status, row.attempts, len(rp.pushes)) == (DeliveryStatus.DELIVERED, 3, 3)


def test_backoff_grows_exponentially() -> None:
    from celery.utils.time import get_exponential_backoff_interval

    delays = [get_exponential_backoff_interval(2, n, 600, full_jitter=False) for n in range(10)]
    assert delays[:5] == [2, 4, 8, 16, 32] and delays[-1] == 600


def test_final_failure_is_marked_failed_and_recorded(session: DeviceSession, receiver_factory: Any,
                                                     queued: list[int]) -> None:
    from core.models import SecurityEvent

    with LoopbackReceiver(statuses=[500]) as rp:
        receiver_factory(rp.endpoint)
        [row] = transmitter.emit_session_revoked(session)
        assert delivery.attempt(row.pk, final=True) == DeliveryStatus.FAILED
    assert SecurityEvent.objects.filter(event_type="ssf.set.failed", details__jti=row.jti).exists()


def test_400_is_final_and_not_retried(session: DeviceSession, receiver_factory: Any, queued: list[int]) -> None:
    with LoopbackReceiver(statuses=[400]) as rp:
        receiver_factory(rp.endpoint)
        [row] = transmitter.emit_session_revoked(session)
        assert tasks.deliver_security_event(row.pk) == DeliveryStatus.REJECTED
        assert tasks.deliver_security_event(row.pk) == DeliveryStatus.REJECTED
        assert len(rp.pushes) == 1
    row.refresh_from_db()
    assert row.last_error == "400 invalid_request: scripted"


def test_unreachable_receiver_is_retried(session: DeviceSession, receiver_factory: Any, queued: list[int],
                                         settings: Any) -> None:
    settings.IDP_SSF_HTTP_TIMEOUT = 1
    receiver_factory("http://127.0.0.1:9/events")  # discard port: connection refused
    [row] = transmitter.emit_session_revoked(session)
    with pytest.raises(delivery.DeliveryRetry, match="ConnectionError"):
        tasks.deliver_security_event(row.pk)


def test_sweep_resends_stuck_and_failed_deliveries(session: DeviceSession, receiver_factory: Any,
                                                   queued: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = receiver_factory()
    now = timezone.now()
    fresh, stuck, failed, old_failed, done = (transmitter.emit_session_revoked(session)[0] for _ in range(5))
    SetDelivery.objects.filter(pk=stuck.pk).update(created_at=now - timedelta(hours=1))
    SetDelivery.objects.filter(pk=failed.pk).update(status=DeliveryStatus.FAILED,
                                                   last_attempt_at=now - timedelta(hours=1))
    SetDelivery.objects.filter(pk=old_failed.pk).update(
        status=DeliveryStatus.FAILED, created_at=now - timedelta(days=9), last_attempt_at=now - timedelta(days=8))
    SetDelivery.objects.filter(pk=done.pk).update(status=DeliveryStatus.DELIVERED, created_at=now - timedelta(hours=1))
    sent: list[tuple[Any, Any]] = []
    monkeypatch.setattr(tasks.deliver_security_event, "apply_async", lambda args, kwargs: sent.append((args, kwargs)))
    assert tasks.retry_undelivered() == 2
    assert sorted(a[0] for a, _ in sent) == sorted([stuck.pk, failed.pk])
    assert all(k == {"sweep": True} for _, k in sent)
    assert fresh.pk not in [a[0] for a, _ in sent] and receiver.enabled


def test_sweep_is_in_beat() -> None:
    entries = beat_schedule()
    assert entries["ssf-retry-undelivered"]["task"] == "shared_signals.deliver_pending_sets"
    assert entries["ssf-purge"]["task"] == "shared_signals.purge_old_sets_and_deliveries"


def test_purge_keeps_what_still_matters(session: DeviceSession, receiver_factory: Any, queued: list[int]) -> None:
    from shared_signals.models import ReceivedSet, SsfTransmitter

    receiver_factory()
    now = timezone.now()
    old_done, old_pending, new_done = (transmitter.emit_session_revoked(session)[0] for _ in range(3))
    SetDelivery.objects.filter(pk__in=[old_done.pk, new_done.pk]).update(status=DeliveryStatus.DELIVERED)
    SetDelivery.objects.filter(pk__in=[old_done.pk, old_pending.pk]).update(created_at=now - timedelta(days=40))
    source = SsfTransmitter.objects.create(name="T", issuer="https://t.example", audience="a",
                                           jwks={"keys": [{"kty": "EC"}]})
    ReceivedSet.objects.create(transmitter=source, jti="old", issued_at=now - timedelta(days=8))
    ReceivedSet.objects.create(transmitter=source, jti="recent", issued_at=now - timedelta(days=6))
    assert tasks.purge() == {"received_sets": 1, "deliveries": 1}
    assert set(SetDelivery.objects.values_list("pk", flat=True)) == {old_pending.pk, new_done.pk}
    assert list(ReceivedSet.objects.values_list("jti", flat=True)) == ["recent"]


class _NestedJson:
    """A loopback server answering every request ``status`` with JSON nested 3000 deep (past
    Python's parser's depth: RecursionError)."""

    def __init__(self, status: int):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b"[" * 3000
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815 (http.server's names)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> _NestedJson:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_receivers_error_body_nested_too_deep_is_still_a_rejection(session: DeviceSession, receiver_factory: Any,
                                                                    queued: list[int]) -> None:
    with _NestedJson(400) as rp:
        receiver_factory(f"{rp.url}/events")
        [row] = transmitter.emit_session_revoked(session)
        assert tasks.deliver_security_event(row.pk) == DeliveryStatus.REJECTED
    row.refresh_from_db()
    assert row.last_error == "HTTP 400"


def test_a_transmitters_jwks_nested_too_deep_cannot_be_used(db: Any) -> None:
    from shared_signals import jwks_cache
    from shared_signals.set_tokens import SetError

    with _NestedJson(200) as mdm, pytest.raises(SetError) as refused:
        jwks_cache.fetch(f"{mdm.url}/jwks.json")
    assert (refused.value.code, refused.value.status) == ("invalid_key", 503)
