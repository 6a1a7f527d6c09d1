"""Shared Signals receiver: SETs pushed to /ssf/receive/<slug> (RFC 8935) by a registered
transmitter are verified (RFC 8417, SSF 1.0) and acted on by policy; forged, misaddressed,
replayed or unknown-transmitter SETs are refused with RFC 8935 §2.3 errors and change nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from attestation.models import Device, DeviceStatus, RegisteredApp
from core.models import SecurityEvent
from idp.tests.conftest import form_post
from sessions.models import DeviceSession, RefreshToken, SessionStatus
from shared_signals.models import CaepEvent, ReceivedSet, ReceiverAction, SsfTransmitter
from shared_signals.testing import LoopbackTransmitter

#: The transmitters' JWKS are on 127.0.0.1, which core.outbound refuses unless told otherwise.
pytestmark = pytest.mark.usefixtures("allow_private_outbound")

AUDIENCE = "https://vigil.example.com/ssf"
REVOKED = CaepEvent.SESSION_REVOKED.value
CREDENTIAL = CaepEvent.CREDENTIAL_CHANGE.value
COMPLIANCE = CaepEvent.DEVICE_COMPLIANCE_CHANGE.value


@pytest.fixture
def mdm() -> Any:
    with LoopbackTransmitter() as transmitter:
        yield transmitter


@pytest.fixture
def registered(mdm: LoopbackTransmitter, db: Any) -> SsfTransmitter:
    """The loopback transmitter registered with a static JWKS (no fetch)."""
    transmitter = SsfTransmitter(name="MDM", issuer=mdm.issuer, jwks=mdm.jwks, audience=AUDIENCE)
    transmitter.full_clean()
    transmitter.save()
    return transmitter


@pytest.fixture
def session_factory(user: Any, mobile_client: Any) -> Any:
    def make(sid: str, **fields: Any) -> DeviceSession:
        fields.setdefault("user", user)
        fields.setdefault("client", mobile_client.client)
        return DeviceSession.objects.create(sid=sid, auth_time=timezone.now(), amr=["pwd"], **fields)

    return make


@pytest.fixture
def device(mobile_client: Any) -> Device:
    app = RegisteredApp.objects.create(client=mobile_client.client, platform="ios", ios_team_id="ABCDE12345",
                                       ios_bundle_id="com.example.app")
    return Device.objects.create(platform="ios", app=app, key_id="ZGV2aWNlLWtleS1pZA==", public_key="-",
                                 security_level="secure_enclave")


def post(http: HttpClient, transmitter: SsfTransmitter, token: str, **headers: Any) -> Any:
    return http.post(reverse("ssf-receive", args=[transmitter.slug]), data=token,
                     content_type=headers.pop("content_type", "application/secevent+jwt"), **headers)


def opaque(sid: str) -> dict[str, str]:
    return {"format": "opaque", "id": sid}


def iss_sub(user: Any) -> dict[str, str]:
    return {"format": "iss_sub", "iss": "http://localhost:8000", "sub": user.get_user_id()}


def state() -> tuple[Any, ...]:
    """Everything a SET could change."""
    return (
        sorted(DeviceSession.objects.values_list("sid", "status")),
        sorted(Device.objects.values_list("key_id", "status")),
        RefreshToken.objects.filter(revoked_at__isnull=False).count(),
        ReceivedSet.objects.count(),
    )


# --- end to end: a transmitter on loopback, its JWKS fetched, pushing over real HTTP ---------


def test_loopback_transmitter_revokes_a_session_here(live_server: Any, mdm: LoopbackTransmitter,
                                                     session_factory: Any) -> None:
    transmitter = SsfTransmitter.objects.create(name="RP", issuer=mdm.issuer, jwks_uri=mdm.jwks_uri,
                                                audience=AUDIENCE)
    target, other = session_factory("sid-target"), session_factory("sid-other")
    token = mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("sid-target"), {"initiating_entity": "user"}, txn="t-1"))
    url = live_server.url + reverse("ssf-receive", args=[transmitter.slug])
    response = mdm.push(url, token)
    assert response.status_code == 202 and response.content == b""
    target.refresh_from_db(), other.refresh_from_db()
    assert (target.status, target.status_reason) == (SessionStatus.REVOKED, "ssf_session_revoked")
    assert other.status == SessionStatus.ACTIVE
    received = ReceivedSet.objects.get()
    assert received.actions == [{"event": REVOKED, "action": "revoke", "matched": True, "changed": ["sid-target"]}]
    revoked = SecurityEvent.objects.get(event_type="session.revoked")
    assert revoked.details["ssf_transmitter"] == "RP" and revoked.details["ssf_txn"] == "t-1"
    assert SecurityEvent.objects.filter(event_type="ssf.set.received").count() == 1
    assert SecurityEvent.objects.filter(event_type="ssf.action", outcome="success").count() == 1
    again = mdm.push(url, token)  # delivered again (RFC 8935 §2): acknowledged, not applied again
    assert (again.status_code, again.content) == (202, b"")
    assert SecurityEvent.objects.filter(event_type="ssf.action").count() == 1
    assert SecurityEvent.objects.filter(event_type="ssf.set.duplicate").count() == 1


def test_user_subject_revokes_every_session_of_the_user(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                                        session_factory: Any, user: Any, client: HttpClient,
                                                        django_user_model: Any) -> None:
    session_factory("s1"), session_factory("s2")
    bob = django_user_model.objects.create(username="bob", email="bob@example.com")
    session_factory("s-bob", user=bob)
    sub_id = {"format": "complex", "user": iss_sub(user)}
    assert post(client, registered, mdm.sign(mdm.claims(AUDIENCE, REVOKED, sub_id))).status_code == 202
    assert dict(DeviceSession.objects.values_list("sid", "status")) == {
        "s1": "revoked", "s2": "revoked", "s-bob": "active"}


def test_complex_subject_members_intersect(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                           session_factory: Any, client: HttpClient, django_user_model: Any) -> None:
    session_factory("s1")
    bob = django_user_model.objects.create(username="bob")
    sub_id = {"format": "complex", "session": opaque("s1"), "user": iss_sub(bob)}  # s1 is not bob's
    assert post(client, registered, mdm.sign(mdm.claims(AUDIENCE, REVOKED, sub_id))).status_code == 202
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert ReceivedSet.objects.get().actions[0]["matched"] is False


def test_credential_change_requires_step_up_at_the_next_refresh(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                                                tokens: dict[str, Any], user: Any,
                                                                mobile_client: Any) -> None:
    event = {"credential_type": "password", "change_type": "update", "initiating_entity": "user"}
    response = post(HttpClient(), registered, mdm.sign(mdm.claims(AUDIENCE, CREDENTIAL, iss_sub(user), event)))
    assert response.status_code == 202
    assert DeviceSession.objects.get().status == SessionStatus.STEP_UP_REQUIRED
    refreshed = form_post(HttpClient(), reverse("token"), {"grant_type": "refresh_token", "client_id":
                          mobile_client.client.client_id, "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 400 and "Step-up" in refreshed.json()["error_description"]


def test_credential_change_can_revoke_by_policy(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                                session_factory: Any, user: Any, client: HttpClient) -> None:
    registered.policy = {**registered.policy, CREDENTIAL: ReceiverAction.REVOKE.value}
    registered.save()
    session_factory("s1")
    event = {"credential_type": "fido2-roaming", "change_type": "revoke"}
    assert post(client, registered, mdm.sign(mdm.claims(AUDIENCE, CREDENTIAL, iss_sub(user), event))).status_code == 202
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_device_not_compliant_suspends_the_device(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                                  device: Device, session_factory: Any, client: HttpClient) -> None:
    sub_id = {"format": "complex", "device": opaque(device.key_id)}
    compliant = {"previous_status": "not-compliant", "current_status": "compliant"}
    assert post(client, registered, mdm.sign(mdm.claims(AUDIENCE, COMPLIANCE, sub_id, compliant))).status_code == 202
    device.refresh_from_db()
    assert device.status == DeviceStatus.ACTIVE  # compliant again: recorded only
    broken = {"previous_status": "compliant", "current_status": "not-compliant", "reason_admin": {"en": "rooted"}}
    assert post(client, registered, mdm.sign(mdm.claims(AUDIENCE, COMPLIANCE, sub_id, broken))).status_code == 202
    device.refresh_from_db()
    assert (device.status, device.status_reason) == (DeviceStatus.SUSPENDED, "ssf_device_compliance_change")
    assert SecurityEvent.objects.filter(event_type="attestation.device.suspended").count() == 1


def test_device_not_compliant_can_require_step_up(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                                  device: Device, session_factory: Any, client: HttpClient) -> None:
    registered.policy = {COMPLIANCE: ReceiverAction.STEP_UP.value}
    registered.save()
    session_factory("bound", device=device), session_factory("unbound")
    sub_id = {"format": "complex", "device": {"format": "iss_sub", "iss": "http://localhost:8000",
                                              "sub": device.key_id}}
    event = {"previous_status": "compliant", "current_status": "not-compliant"}
    assert post(client, registered, mdm.sign(mdm.claims(AUDIENCE, COMPLIANCE, sub_id, event))).status_code == 202
    assert dict(DeviceSession.objects.values_list("sid", "status")) == {"bound": "step_up", "unbound": "active"}
    device.refresh_from_db()
    assert device.status == DeviceStatus.ACTIVE


def test_email_subject_needs_a_trusted_transmitter_and_a_verified_email(
    registered: SsfTransmitter, mdm: LoopbackTransmitter, session_factory: Any, client: HttpClient,
) -> None:
    session_factory("s1")
    sub_id = {"format": "email", "email": "ALICE@example.com"}
    post(client, registered, mdm.sign(mdm.claims(AUDIENCE, REVOKED, sub_id)))
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    registered.trust_email = True
    registered.save()
    assert post(client, registered, mdm.sign(mdm.claims(AUDIENCE, REVOKED, sub_id))).status_code == 202
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_client_scoped_transmitter_reaches_only_its_client(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                                           session_factory: Any, service_client: Any,
                                                           client: HttpClient, user: Any) -> None:
    registered.client = service_client.client
    registered.save()
    session_factory("mobile-session")
    session_factory("service-session", client=service_client.client)
    sub_id = {"format": "complex", "user": iss_sub(user)}
    assert post(client, registered, mdm.sign(mdm.claims(AUDIENCE, REVOKED, sub_id))).status_code == 202
    assert dict(DeviceSession.objects.values_list("sid", "status")) == {
        "mobile-session": "active", "service-session": "revoked"}


# --- refusals: RFC 8935 §2.3 errors, nothing changes ------------------------------------------


def _forgeries(mdm: LoopbackTransmitter) -> dict[str, tuple[str, str]]:
    claims = mdm.claims(AUDIENCE, REVOKED, opaque("victim"))
    attacker = ECKey.generate_key("P-256", private=True)
    hmac_key = OctKey.import_key(mdm.jwks["keys"][0]["x"].encode())
    return {
        "forged signature": (mdm.sign(claims, key=attacker), "authentication_failed"),
        "unknown kid": (mdm.sign(claims, key=attacker, kid="attacker"), "invalid_key"),
        "wrong issuer": (mdm.sign({**claims, "iss": "https://evil.example"}), "invalid_issuer"),
        "wrong audience": (mdm.sign({**claims, "aud": "https://other.example"}), "invalid_audience"),
        "typ JWT": (mdm.sign(claims, typ="JWT"), "invalid_request"),
        "alg none": (_unsigned(claims, mdm.kid), "invalid_key"),
        "HS256 with the public key": (
            jwt.encode({"alg": "HS256", "typ": "secevent+jwt", "kid": mdm.kid}, claims, hmac_key,
                       algorithms=["HS256"]), "invalid_key"),
        "exp present": (mdm.sign({**claims, "exp": int(time.time()) + 60}), "invalid_request"),
        "sub present": (mdm.sign({**claims, "sub": "victim"}), "invalid_request"),
        "too old": (mdm.sign({**claims, "iat": int(time.time()) - 8 * 86400}), "invalid_request"),
        "from the future": (mdm.sign({**claims, "iat": int(time.time()) + 3600}), "invalid_request"),
        "no jti": (mdm.sign({k: v for k, v in claims.items() if k != "jti"}), "invalid_request"),
        "not a JWS": ("not-a-set", "invalid_request"),
    }


def _unsigned(claims: dict[str, Any], kid: str) -> str:
    import base64
    import json

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'secevent+jwt', 'kid': kid})}.{b64(claims)}."


def test_forged_and_misaddressed_sets_change_nothing(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                                     session_factory: Any, client: HttpClient) -> None:
    session_factory("victim")
    before = state()
    for name, (token, code) in _forgeries(mdm).items():
        response = post(client, registered, token)
        assert response.status_code == 400, name
        assert response.json()["err"] == code, (name, response.json())
        assert set(response.json()) == {"err", "description"}
    assert state() == before
    assert SecurityEvent.objects.filter(event_type="ssf.set.refused", outcome="denied").count() == len(_forgeries(mdm))
    assert not SecurityEvent.objects.filter(event_type__in=["session.revoked", "ssf.action"]).exists()


def test_replayed_jti_changes_nothing(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                      session_factory: Any, client: HttpClient) -> None:
    from django.core.cache import cache

    session_factory("s1")
    token = mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("s1")))
    assert post(client, registered, token).status_code == 202
    session_factory("s2")
    replay = mdm.claims(AUDIENCE, REVOKED, opaque("s2"), jti=ReceivedSet.objects.get().jti)
    before = state()
    assert post(client, registered, mdm.sign(replay)).json() == {"err": "invalid_request",
                                                                 "description": "replayed jti"}
    cache.clear()  # the unique row still refuses it
    assert post(client, registered, mdm.sign(replay)).json()["description"] == "replayed jti"
    assert state() == before and DeviceSession.objects.get(sid="s2").status == SessionStatus.ACTIVE


def test_unknown_or_disabled_transmitter_is_refused(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                                    session_factory: Any, client: HttpClient) -> None:
    session_factory("s1")
    token = mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("s1")))
    response = client.post(reverse("ssf-receive", args=["nobody"]), data=token,
                           content_type="application/secevent+jwt")
    assert response.status_code == 400 and response.json()["err"] == "access_denied"
    registered.enabled = False
    registered.save()
    assert post(client, registered, token).json()["err"] == "access_denied"
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE and not ReceivedSet.objects.exists()


def test_required_authorization_header(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                       session_factory: Any, client: HttpClient) -> None:
    registered.set_authorization_header("Bearer mdm-push-secret")
    registered.save()
    session_factory("s1")
    token = mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("s1")))
    assert post(client, registered, token).json()["err"] == "authentication_failed"
    assert post(client, registered, token, HTTP_AUTHORIZATION="Bearer wrong").json()["err"] == "authentication_failed"
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert post(client, registered, token, HTTP_AUTHORIZATION="Bearer mdm-push-secret").status_code == 202


def test_wrong_media_type_and_method(registered: SsfTransmitter, mdm: LoopbackTransmitter, client: HttpClient) -> None:
    token = mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("s1")))
    assert post(client, registered, token, content_type="application/json").json()["err"] == "invalid_request"
    assert client.get(reverse("ssf-receive", args=[registered.slug])).status_code == 405
    # a multipart form is parsed (and its body consumed) before the view: refused all the same
    form = client.post(reverse("ssf-receive", args=[registered.slug]), {"set": token})
    assert form.status_code == 400 and form.json()["err"] == "invalid_request"
    assert not ReceivedSet.objects.exists() and DeviceSession.objects.filter(status=SessionStatus.ACTIVE).count() == \
        DeviceSession.objects.count()


def test_an_oversized_push_is_refused_and_recorded(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                                   session_factory: Any, client: HttpClient) -> None:
    session_factory("s1")
    token = mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("s1"), event={"reason_admin": {"en": "x" * 70_000}}))
    response = post(client, registered, token)
    assert response.status_code == 400 and response.json() == {"err": "invalid_request",
                                                                "description": "the SET is too large"}
    refused = SecurityEvent.objects.get(event_type="ssf.set.refused")
    assert refused.reason == "invalid_request" and refused.details["transmitter"] == registered.slug
    assert not ReceivedSet.objects.exists() and DeviceSession.objects.get().status == SessionStatus.ACTIVE


# --- the transmitter's JWKS: fetched, cached, refreshed for a rotated key ---------------------


def test_jwks_is_fetched_cached_and_refreshed_on_rotation(mdm: LoopbackTransmitter, session_factory: Any,
                                                          client: HttpClient, settings: Any, db: Any) -> None:
    import shared_signals.jwks_cache as jwks_cache

    transmitter = SsfTransmitter.objects.create(name="RP", issuer=mdm.issuer, jwks_uri=mdm.jwks_uri,
                                                audience=AUDIENCE)
    fetches: list[str] = []
    real_fetch = jwks_cache.fetch

    def counting(url: str, **names: str) -> dict[str, Any]:
        fetches.append(url)
        return real_fetch(url, **names)

    settings.IDP_SSF_JWKS_MIN_REFETCH_SECONDS = 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jwks_cache, "fetch", counting)
        for sid in ("a", "b"):
            session_factory(sid)
            assert post(client, transmitter, mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque(sid)))).status_code == 202
        assert len(fetches) == 1  # cached
        new_key = ECKey.generate_key("P-256", private=True)
        public = {**new_key.as_dict(private=False), "kid": "k2", "alg": "ES256", "use": "sig"}
        mdm.state.jwks = {"keys": [*mdm.jwks["keys"], public]}
        session_factory("c")
        token = mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("c")), key=new_key, kid="k2")
        assert post(client, transmitter, token).status_code == 202
        assert len(fetches) == 2  # the unknown kid refreshed the JWKS once
        settings.IDP_SSF_JWKS_MIN_REFETCH_SECONDS = 3600
        forged = mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("c")), key=new_key, kid="k3")
        assert post(client, transmitter, forged).json()["err"] == "invalid_key"
        assert len(fetches) == 2  # no refetch storm for forged kids


def test_unreachable_jwks_asks_for_a_retry(session_factory: Any, client: HttpClient, db: Any) -> None:
    with LoopbackTransmitter() as gone:
        issuer, token = gone.issuer, gone.sign(gone.claims(AUDIENCE, REVOKED, opaque("s1")))
        jwks_uri = gone.jwks_uri
    transmitter = SsfTransmitter.objects.create(name="RP", issuer=issuer, jwks_uri=jwks_uri, audience=AUDIENCE)
    session_factory("s1")
    response = post(client, transmitter, token)
    assert response.status_code == 503 and response.json()["err"] == "invalid_key"
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE


def test_pushes_while_the_jwks_is_down_do_not_hammer_it(session_factory: Any, client: HttpClient, settings: Any,
                                                        db: Any) -> None:
    """Anyone may POST to a transmitter's push URL (when it has no Authorization header): a body
    that is no JWS fetches nothing, and while the JWKS cannot be had, one fetch per
    ``IDP_SSF_JWKS_MIN_REFETCH_SECONDS`` is tried, however many pushes arrive (each web worker
    would otherwise wait out the timeout on the transmitter's dead JWKS host, once per push)."""
    import shared_signals.jwks_cache as jwks_cache

    with LoopbackTransmitter() as gone:
        issuer, jwks_uri = gone.issuer, gone.jwks_uri
        tokens = [gone.sign(gone.claims(AUDIENCE, REVOKED, opaque("s1"))) for _ in range(3)]
    transmitter = SsfTransmitter.objects.create(name="RP", issuer=issuer, jwks_uri=jwks_uri, audience=AUDIENCE)
    session_factory("s1")
    fetches: list[str] = []
    real_fetch = jwks_cache.fetch

    def counting(url: str, **names: str) -> dict[str, Any]:
        fetches.append(url)
        return real_fetch(url, **names)

    settings.IDP_SSF_JWKS_MIN_REFETCH_SECONDS = 3600
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jwks_cache, "fetch", counting)
        for garbage in ("x", "a.b.c", "e30.e30.e30"):
            assert post(client, transmitter, garbage).json()["err"] == "invalid_request"
        assert fetches == []
        answers = [post(client, transmitter, token) for token in tokens]
    assert [(a.status_code, a.json()["err"]) for a in answers] == [(503, "invalid_key")] * 3
    assert len(fetches) == 1
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE and not ReceivedSet.objects.exists()


def test_a_forged_kid_does_not_refetch_a_jwks_that_just_failed(
    mdm: LoopbackTransmitter, session_factory: Any, client: HttpClient, settings: Any, db: Any,
) -> None:
    """The cached JWKS is old enough to refresh for a new ``kid``, but the refresh fails: the
    next forged ``kid`` is refused with the cached keys, not by another fetch."""
    import shared_signals.jwks_cache as jwks_cache

    transmitter = SsfTransmitter.objects.create(name="RP", issuer=mdm.issuer, jwks_uri=mdm.jwks_uri,
                                                audience=AUDIENCE)
    settings.IDP_SSF_JWKS_MIN_REFETCH_SECONDS = 0
    session_factory("s1")
    assert post(client, transmitter, mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("s1")))).status_code == 202
    fetches: list[str] = []

    def failing(url: str, **names: str) -> dict[str, Any]:
        fetches.append(url)
        raise jwks_cache.SetError(jwks_cache.SetErrorCode.INVALID_KEY, "cannot be fetched now", status=503)

    settings.IDP_SSF_JWKS_MIN_REFETCH_SECONDS = 3
    session_factory("s2")
    forged_key = ECKey.generate_key("P-256", private=True)
    time.sleep(3.1)  # the cached copy is now old enough to refresh for a new kid
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jwks_cache, "fetch", failing)
        for kid in ("k7", "k8", "k9"):
            forged = mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("s2")), key=forged_key, kid=kid)
            assert post(client, transmitter, forged).status_code in (400, 503)
    assert len(fetches) == 1
    assert DeviceSession.objects.get(sid="s2").status == SessionStatus.ACTIVE


def test_a_received_revocation_is_transmitted_onwards_with_its_txn(
    registered: SsfTransmitter, mdm: LoopbackTransmitter, session_factory: Any, client: HttpClient,
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any,
) -> None:
    from shared_signals import transmitter
    from shared_signals.models import SetDelivery, SsfReceiver

    monkeypatch.setattr(transmitter, "enqueue", lambda pk: None)
    SsfReceiver.objects.create(name="SIEM", audience="https://siem.example.com", endpoint_url="https://siem.example.com/e")
    session_factory("s1")
    token = mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("s1"), txn="cause-42"))
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, registered, token).status_code == 202
    onward = SetDelivery.objects.get().claims
    assert onward["txn"] == "cause-42" and onward["sub_id"]["session"] == opaque("s1")
    assert onward["events"][REVOKED]["initiating_entity"] == "system"


def test_a_failed_action_leaves_the_jti_free_for_the_retry(
    registered: SsfTransmitter, mdm: LoopbackTransmitter, session_factory: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shared_signals import actions, receiver

    session_factory("s1")
    token = mdm.sign(mdm.claims(AUDIENCE, REVOKED, opaque("s1")))
    push = receiver.Push(slug=registered.slug, body=token.encode(), content_type="application/secevent+jwt",
                         authorization="", ip=None)
    real_apply = actions.apply

    def broken(*args: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(actions, "apply", broken)
    with pytest.raises(RuntimeError):
        receiver.receive(push)
    assert not ReceivedSet.objects.exists() and DeviceSession.objects.get().status == SessionStatus.ACTIVE
    monkeypatch.setattr(actions, "apply", real_apply)
    receiver.receive(push)  # the transmitter's retry of the same jti is accepted
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED


def test_a_set_whose_header_or_claims_nest_too_deep_is_a_clean_error() -> None:
    """JSON nested past Python's recursion limit (RecursionError, not ValueError) is malformed."""
    from core.encoding import b64url_encode
    from shared_signals.set_tokens import SetError, SetErrorCode, header_of

    deep = b64url_encode(("[" * 100_000 + "]" * 100_000).encode())
    with pytest.raises(SetError) as refused:
        header_of(f"{deep}.e30.sig")
    assert refused.value.code == SetErrorCode.INVALID_REQUEST


# --- text no column holds, from a transmitter whose signature verifies ---------------------------


def _sign_escaped(mdm: LoopbackTransmitter, claims: dict[str, Any]) -> str:
    """Signed as JSON with ``\\u`` escapes, the way a transmitter can send a lone surrogate
    (``mdm.sign`` encodes the claims as UTF-8 first, which cannot hold one)."""
    import json

    from joserfc import jws

    header = {"alg": "ES256", "typ": "secevent+jwt", "kid": mdm.kid}
    return jws.serialize_compact(header, json.dumps(claims).encode(), mdm.key, algorithms=["ES256"])


def test_a_jti_with_a_lone_surrogate_is_malformed(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                                  session_factory: Any, client: HttpClient) -> None:
    """``"jti": "\\ud800"`` is no text PostgreSQL holds: it was a 500 (the replay key could not
    encode it); now the SET is malformed, as a jti with a NUL is, and nothing changes."""
    session_factory("s1")
    before = state()
    response = post(client, registered, _sign_escaped(mdm, mdm.claims(AUDIENCE, REVOKED, opaque("s1"), jti="\ud800")))
    assert response.json() == {"err": "invalid_request", "description": "jti missing or malformed"}
    assert state() == before
    assert SecurityEvent.objects.filter(event_type="ssf.set.refused", outcome="denied").count() == 1


def test_an_email_subject_with_a_lone_surrogate_names_no_one(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                                             session_factory: Any, client: HttpClient) -> None:
    """An email no column holds matches no user (it was a 500: the lookup could not be sent)."""
    registered.trust_email = True
    registered.save()
    session_factory("s1")
    sub_id = {"format": "email", "email": "alice\ud800@example.com"}
    response = post(client, registered, _sign_escaped(mdm, mdm.claims(AUDIENCE, REVOKED, sub_id)))
    assert response.status_code == 202
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert ReceivedSet.objects.get().actions == [{"event": REVOKED, "action": "revoke", "matched": False, "changed": []}]


def test_a_txn_with_a_lone_surrogate_is_recorded_escaped(registered: SsfTransmitter, mdm: LoopbackTransmitter,
                                                         session_factory: Any, client: HttpClient) -> None:
    """The ``txn`` is only recorded (the events' ``ssf_txn``): the SET is applied and the
    surrogate written out, where it was a 500 (jsonb refused the events' details)."""
    session_factory("s1")
    token = _sign_escaped(mdm, mdm.claims(AUDIENCE, REVOKED, opaque("s1"), txn="t\ud800"))
    assert post(client, registered, token).status_code == 202
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert SecurityEvent.objects.get(event_type="session.revoked").details["ssf_txn"] == "t\\ud800"
