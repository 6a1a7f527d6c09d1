"""Revocation reaches everyone (issue 13 §5): every way a token family or a credential ends
goes through ``sessions.flows.revocation``, records exactly one security event for it and
queues exactly one CAEP SET (session-revoked or credential-change) for a registered
receiver, handed to the delivery worker when the transaction commits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client as BrowserClient
from django.urls import reverse
from django.utils import timezone

from accounts.models import Passkey, SealedTOTPDevice
from core.events import EventType
from core.models import SecurityEvent
from sessions.models import DeviceSession, RefreshToken, SessionStatus
from shared_signals import transmitter
from shared_signals.models import CaepEvent, SetDelivery, SsfReceiver

from .conftest import PASSWORD, exchange, form_post, get_code, make_pkce

SESSION, CREDENTIAL = "session", "credential"


@pytest.fixture
def receiver(db: Any) -> SsfReceiver:
    receiver = SsfReceiver(name="SIEM", audience="https://siem.example.com", endpoint_url="http://127.0.0.1:9/e")
    receiver.full_clean()
    receiver.save()
    return receiver


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pks: list[int] = []
    monkeypatch.setattr(transmitter, "enqueue", pks.append)
    return pks


@pytest.fixture
def family(tokens: dict[str, Any], user: Any) -> DeviceSession:
    """The family a real authorization (code + PKCE, browser login) started."""
    return DeviceSession.objects.select_related("client", "user").get(user=user)


def _device(session: DeviceSession) -> Any:
    from attestation.models import Device, Platform, RegisteredApp

    app = RegisteredApp.objects.create(client=session.client, platform=Platform.ANDROID,
                                       android_package_name="com.example.app")
    verdict = {"key_attestation": {"root_of_trust": {"verified_boot_state": "Unverified", "device_locked": False}}}
    device = Device.objects.create(platform="android", app=app, key_id="dev-1", public_key="-",
                                   security_level="tee", verdict=verdict)
    DeviceSession.objects.filter(pk=session.pk).update(device=device)
    session.device = device
    return device


# --- the ways ---------------------------------------------------------------------------------


def account_page_sign_out(ctx: dict[str, Any]) -> None:
    ctx["browser"].post(reverse("accounts:device_revoke", args=[ctx["session"].pk]))


def browser_logout(ctx: dict[str, Any]) -> None:
    ctx["browser"].post(reverse("accounts:logout"))


def browser_signed_out_elsewhere(ctx: dict[str, Any]) -> None:
    from accounts.models import BrowserSession

    elsewhere = BrowserClient()
    elsewhere.post(reverse("accounts:login"), {"username": "alice", "password": PASSWORD})
    target = BrowserSession.objects.open().get(sid=ctx["session"].browser_sid)
    assert elsewhere.post(reverse("accounts:session_sign_out", args=[target.pk])).status_code == 302


def rp_initiated_logout(ctx: dict[str, Any]) -> None:
    query = urlencode({"id_token_hint": ctx["tokens"]["id_token"], "client_id": ctx["session"].client.client_id})
    ctx["browser"].post(f"{reverse('end-session')}?{query}", {"confirm": "yes"})


def token_revocation(ctx: dict[str, Any]) -> None:
    form_post(BrowserClient(), reverse("revoke"), {"token": ctx["tokens"]["refresh_token"],
                                                     "client_id": ctx["session"].client.client_id})


def admin_revoke(ctx: dict[str, Any]) -> None:
    ctx["admin"].post(reverse("admin:device_sessions_devicesession_changelist"),
                      {"action": "revoke", "_selected_action": [ctx["session"].pk]})


def password_change(ctx: dict[str, Any]) -> None:
    new = "another long passphrase 9"
    ctx["browser"].post(reverse("accounts:password_change"),
                        {"old_password": PASSWORD, "new_password1": new, "new_password2": new})


def password_set_by_admin(ctx: dict[str, Any]) -> None:
    new = "an admin's long passphrase 3"
    response = ctx["admin"].post(reverse("admin:auth_user_password_change", args=[ctx["user"].pk]),
                                 {"password1": new, "password2": new, "usable_password": "true"})
    assert response.status_code == 302, response.content
    ctx["user"].refresh_from_db()
    assert ctx["user"].check_password(new)


def factor_reset_by_admin(ctx: dict[str, Any]) -> None:
    device = SealedTOTPDevice.create_sealed(ctx["user"], "app")
    device.confirmed = True
    device.save()
    ctx["admin"].post(reverse("admin:accounts_user_changelist"),
                      {"action": "reset_factors", "_selected_action": [ctx["user"].pk]})


def totp_removed(ctx: dict[str, Any]) -> None:
    from accounts.flows import factors

    device = SealedTOTPDevice.create_sealed(ctx["user"], "app")
    device.confirmed = True
    device.save()
    factors.remove_totp(None, ctx["user"])  # type: ignore[arg-type]


def passkey_removed(ctx: dict[str, Any]) -> None:
    from accounts.flows import passkeys

    key = Passkey.objects.create(user=ctx["user"], name="Phone", credential_id="cred-1", public_key=b"\x00",
                                 user_handle=ctx["user"].ensure_webauthn_user_handle(), transports=["internal"])
    passkeys.remove(None, ctx["user"], key.pk)


def user_deactivated(ctx: dict[str, Any]) -> None:
    ctx["user"].is_active = False
    ctx["user"].save()


def risk_revokes(ctx: dict[str, Any]) -> None:
    from risk import actions
    from risk.signals import Signal

    plan = actions.Plan(signals=[Signal("attestation_failures")], actions={"attestation_failures": "revoke"},
                        action="revoke")
    session = ctx["session"]
    actions.execute(plan, user=session.user, client=session.client, session=session, request=None,
                    now=timezone.now(), source="test")


def device_health_denies(ctx: dict[str, Any]) -> None:
    from device_health import evaluate, tasks

    device, now = _device(ctx["session"]), timezone.now()
    evaluation = evaluate.evaluate(device, {}, now)
    assert evaluation.decision.outcome == "deny"
    tasks.apply_outcome(evaluation, now)


def device_revoked(ctx: dict[str, Any]) -> None:
    from attestation.flows.registry import revoke_device

    revoke_device(_device(ctx["session"]), reason="lost")


def stale_attestation(ctx: dict[str, Any]) -> None:
    from attestation.models import Device
    from sessions import revalidation

    device, long_ago = _device(ctx["session"]), timezone.now() - timedelta(days=400)
    Device.objects.filter(pk=device.pk).update(requires_reattestation=True, reattestation_required_at=long_ago,
                                               last_attested_at=long_ago, last_asserted_at=long_ago)
    assert revalidation.revoke_stale_sessions() == 1


def shared_signal_received(ctx: dict[str, Any]) -> None:
    from shared_signals.models import SsfTransmitter
    from shared_signals.testing import LoopbackTransmitter

    with LoopbackTransmitter() as mdm:
        sender = SsfTransmitter(name="MDM", issuer=mdm.issuer, jwks=mdm.jwks, audience="https://vigil.example.com/ssf")
        sender.full_clean()
        sender.save()
        subject = {"format": "opaque", "id": ctx["session"].sid}
        token = mdm.sign(mdm.claims(sender.audience, CaepEvent.SESSION_REVOKED.value, subject, {}, txn="t-1"))
    response = BrowserClient().post(reverse("ssf-receive", args=[sender.slug]), data=token,
                                    content_type="application/secevent+jwt")
    assert response.status_code == 202, response.content


def code_reuse(ctx: dict[str, Any]) -> None:
    pkce = make_pkce()
    code, _ = get_code(ctx["browser"], ctx["session"].client.client_id, pkce)
    first = exchange(BrowserClient(), code, pkce, ctx["session"].client.client_id)
    assert first.status_code == 200
    # The new family is the one the reuse must end; the fixture's stays untouched.
    ctx["session"] = DeviceSession.objects.exclude(pk=ctx["session"].pk).get(user=ctx["user"])
    # Its first refresh token used: a second exchange cannot be the retry of a lost answer.
    assert form_post(BrowserClient(), reverse("token"), {
        "grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"],
        "client_id": ctx["session"].client.client_id}).status_code == 200
    assert exchange(BrowserClient(), code, pkce, ctx["session"].client.client_id).status_code == 400


def refresh_reuse(ctx: dict[str, Any]) -> None:
    data = {"grant_type": "refresh_token", "refresh_token": ctx["tokens"]["refresh_token"],
            "client_id": ctx["session"].client.client_id}
    rotated = form_post(BrowserClient(), reverse("token"), data)
    assert rotated.status_code == 200
    # The successor is used, so the chain moved on: the predecessor again is reuse, not a retry.
    successor = dict(data, refresh_token=rotated.json()["refresh_token"])
    assert form_post(BrowserClient(), reverse("token"), successor).status_code == 200
    assert form_post(BrowserClient(), reverse("token"), data).status_code == 400


WAYS: list[tuple[Callable[[dict[str, Any]], None], set[str]]] = [
    (account_page_sign_out, {SESSION}),
    (browser_logout, {SESSION}),
    (browser_signed_out_elsewhere, {SESSION}),
    (rp_initiated_logout, {SESSION}),
    (token_revocation, {SESSION}),
    (admin_revoke, {SESSION}),
    (password_change, {SESSION, CREDENTIAL}),
    (password_set_by_admin, {SESSION, CREDENTIAL}),
    (factor_reset_by_admin, {SESSION, CREDENTIAL}),
    (totp_removed, {CREDENTIAL}),
    (passkey_removed, {CREDENTIAL}),
    (user_deactivated, {SESSION}),
    (risk_revokes, {SESSION}),
    (device_health_denies, {SESSION}),
    (device_revoked, {SESSION}),
    (stale_attestation, {SESSION}),
    (shared_signal_received, {SESSION}),
    (code_reuse, {SESSION}),
    (refresh_reuse, {SESSION}),
]


@pytest.mark.parametrize(("way", "ends"), WAYS, ids=[w.__name__ for w, _ in WAYS])
def test_each_way_records_one_event_and_queues_one_set(
    way: Callable[[dict[str, Any]], None], ends: set[str], family: DeviceSession, tokens: dict[str, Any],
    browser: BrowserClient, admin_client: Any, user: Any, receiver: SsfReceiver, enqueued: list[int],
    django_capture_on_commit_callbacks: Any,
) -> None:
    ctx = {"session": family, "tokens": tokens, "browser": browser, "admin": admin_client, "user": user}
    with django_capture_on_commit_callbacks(execute=True):
        way(ctx)
    session = DeviceSession.objects.get(pk=ctx["session"].pk)
    revoked_events = SecurityEvent.objects.filter(event_type="session.revoked", session_id=session.sid)
    credential_events = SecurityEvent.objects.filter(user=user, details__has_key="credential_type")
    revoked_sets = SetDelivery.objects.filter(receiver=receiver, event_type=CaepEvent.SESSION_REVOKED.value)
    credential_sets = SetDelivery.objects.filter(receiver=receiver, event_type=CaepEvent.CREDENTIAL_CHANGE.value)
    if SESSION in ends:
        assert session.status == SessionStatus.REVOKED
        assert not RefreshToken.objects.filter(session=session, revoked_at__isnull=True).exists()
        assert revoked_events.count() == 1 and revoked_sets.count() == 1
        [delivery] = revoked_sets
        assert delivery.claims["sub_id"]["session"] == {"format": "opaque", "id": session.sid}
    else:
        assert session.status == SessionStatus.ACTIVE and not revoked_events.exists() and not revoked_sets.exists()
    if CREDENTIAL in ends:
        assert credential_events.count() == 1 and credential_sets.count() == 1
        [delivery] = credential_sets
        event = delivery.claims["events"][CaepEvent.CREDENTIAL_CHANGE.value]
        assert event["credential_type"] == credential_events.get().details["credential_type"]
    else:
        assert not credential_events.exists() and not credential_sets.exists()
    assert sorted(enqueued) == sorted(SetDelivery.objects.values_list("pk", flat=True))
    assert len(enqueued) == len(ends)


def test_password_change_announces_a_password_update(browser: BrowserClient, user: Any, receiver: SsfReceiver,
                                                     enqueued: list[int],
                                                     django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        password_change({"browser": browser})
    [delivery] = SetDelivery.objects.filter(event_type=CaepEvent.CREDENTIAL_CHANGE.value)
    event = delivery.claims["events"][CaepEvent.CREDENTIAL_CHANGE.value]
    assert event["credential_type"] == "password" and event["change_type"] == "update"
    assert event["initiating_entity"] == "user"
    assert delivery.claims["sub_id"] == {"format": "iss_sub", "iss": "http://localhost:8000",
                                         "sub": user.get_user_id()}
    assert enqueued == [delivery.pk]


def test_an_already_revoked_family_announces_nothing_again(family: DeviceSession, receiver: SsfReceiver,
                                                            enqueued: list[int]) -> None:
    from sessions.flows import revocation

    assert revocation.revoke_session(family, "revoked_by_admin") is True
    assert revocation.revoke_session(family, "revoked_by_admin") is False
    assert SecurityEvent.objects.filter(event_type="session.revoked").count() == 1
    assert SetDelivery.objects.count() == 1


def test_listeners_hear_the_announcement_not_the_audit_table(family: DeviceSession, receiver: SsfReceiver) -> None:
    """A ``session.revoked`` row written by anyone else is only a record: nothing is sent."""
    from core.events import record

    record(EventType.SESSION_REVOKED, session_id=family.sid, reason="forged")
    assert not SetDelivery.objects.exists()
    heard: list[dict[str, Any]] = []

    def listener(**kwargs: Any) -> None:
        heard.append(kwargs)

    from sessions.flows.revocation import session_revoked

    session_revoked.connect(listener)
    try:
        from sessions.flows.tokens import revoke_session  # the token flows' name delegates

        revoke_session(family, "revoked_by_admin", now=timezone.now() - timedelta(seconds=1))
    finally:
        session_revoked.disconnect(listener)
    assert [(h["session"].pk, h["reason"], str(h["initiator"])) for h in heard] == [
        (family.pk, "revoked_by_admin", "admin")]
    assert SetDelivery.objects.count() == 1


@pytest.fixture
def no_audit_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every recorder the device paths use writes nothing: no audit row can carry the news."""
    from attestation.flows import registry
    from device_health import evaluate
    from sessions.flows import revocation

    for module in (registry, evaluate, revocation):
        monkeypatch.setattr(module, "record", lambda *args, **kwargs: None)


@pytest.mark.usefixtures("no_audit_rows")
def test_a_device_revocation_that_wrote_no_audit_row_still_reaches_shared_signals(
        family: DeviceSession, receiver: SsfReceiver, enqueued: list[int]) -> None:
    """Shared signals hear the announcements (``attestation.signals.device_revoked`` ends the
    families, ``session_revoked`` reaches the transmitter), not ``post_save`` of audit rows."""
    from attestation.flows.registry import revoke_device

    device, before = _device(family), SecurityEvent.objects.count()
    revoke_device(device, reason="lost")
    assert SecurityEvent.objects.count() == before
    family.refresh_from_db()
    assert family.status == SessionStatus.REVOKED and family.status_reason == "device_revoked"
    delivery = SetDelivery.objects.get()
    assert delivery.event_type == CaepEvent.SESSION_REVOKED


@pytest.mark.usefixtures("no_audit_rows")
def test_a_compliance_change_that_wrote_no_audit_row_still_reaches_shared_signals(
        family: DeviceSession, receiver: SsfReceiver, enqueued: list[int]) -> None:
    from device_health import evaluate, tasks

    device, now, before = _device(family), timezone.now(), SecurityEvent.objects.count()
    evaluation = evaluate.evaluate(device, {}, now)
    evaluate.persist(evaluation, now, trigger="revalidation")
    tasks.apply_outcome(evaluation, now)
    assert SecurityEvent.objects.count() == before
    assert SetDelivery.objects.filter(event_type=CaepEvent.DEVICE_COMPLIANCE_CHANGE).count() == 1
    assert SetDelivery.objects.filter(event_type=CaepEvent.SESSION_REVOKED).count() == 1


def test_a_suspended_device_is_announced(family: DeviceSession) -> None:
    from attestation.flows.registry import suspend_device
    from attestation.signals import device_suspended

    heard: list[dict[str, Any]] = []

    def listener(**kwargs: Any) -> None:
        heard.append(kwargs)

    device_suspended.connect(listener)
    try:
        suspend_device(_device(family), reason="mdm")
    finally:
        device_suspended.disconnect(listener)
    assert [(h["device"].key_id, h["reason"]) for h in heard] == [("dev-1", "mdm")]
