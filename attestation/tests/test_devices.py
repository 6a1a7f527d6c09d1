"""iOS device registry flows: enroll with an attestation, assert with a counter, operator actions.
Negative tests forge the attack and assert the reason, the security event and that nothing changed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from attestation.binding import RequestBinding
from attestation.errors import AttestationError, Reason
from attestation.flows.challenges import issue_challenge
from attestation.flows.devices import assert_apple_device, enroll_apple_device
from attestation.flows.registry import reactivate_device, require_reattestation, revoke_device, suspend_device
from attestation.models import Device, DeviceStatus, RegisteredApp
from core.models import SecurityEvent
from simulator.ios import IOSDevice

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]


def enroll(app: RegisteredApp, device: IOSDevice, binding: RequestBinding, **forge: Any) -> Device:
    return enroll_apple_device(app, device.attest(binding.client_data_hash(), **forge), binding)


def reason_of(call: Callable[[], Any]) -> str:
    with pytest.raises(AttestationError) as exc:
        call()
    return exc.value.reason


def last_event() -> SecurityEvent:
    return SecurityEvent.objects.order_by("-pk").first()  # type: ignore[return-value]


@pytest.fixture
def enrolled(ios_app: RegisteredApp, ios_device: IOSDevice, enroll_binding: RequestBinding) -> Device:
    return enroll(ios_app, ios_device, enroll_binding)


# --------------------------------------------------------------------- enrollment
def test_enroll_registers_the_device(enrolled: Device, ios_device: IOSDevice, ios_app: RegisteredApp) -> None:
    assert enrolled.platform == "ios"
    assert enrolled.app == ios_app
    assert enrolled.key_id == ios_device.key_id_b64
    assert enrolled.public_key == ios_device.public_key_pem
    assert enrolled.counter == 0
    assert enrolled.security_level == "secure_enclave"
    assert bytes(enrolled.receipt) == ios_device.receipt
    assert enrolled.verdict["aaguid"] == "appattest"
    event = last_event()
    assert (event.event_type, event.outcome, event.client_id) == ("attestation.enroll", "success", "mobile-app")
    assert event.details["created"] is True


def test_enroll_again_recognises_the_device(
    enrolled: Device, ios_app: RegisteredApp, ios_device: IOSDevice, binding_for: Callable[..., RequestBinding]
) -> None:
    require_reattestation(enrolled)
    binding = binding_for(issue_challenge(ios_app.client, "enroll").value, "mobile-app")
    again = enroll(ios_app, ios_device, binding)
    assert again.pk == enrolled.pk
    assert again.requires_reattestation is False
    assert Device.objects.count() == 1
    assert last_event().details["created"] is False


def test_enroll_burns_the_challenge(enroll_binding: RequestBinding, ios_app: RegisteredApp, ios_device: IOSDevice) -> None:
    enroll(ios_app, ios_device, enroll_binding)
    assert reason_of(lambda: enroll(ios_app, IOSDevice(ios_device.app_id), enroll_binding)) == Reason.CHALLENGE_REUSED


def test_enroll_with_a_refresh_challenge_is_wrong_purpose(
    ios_app: RegisteredApp, ios_device: IOSDevice, binding_for: Callable[..., RequestBinding]
) -> None:
    binding = binding_for(issue_challenge(ios_app.client, "refresh").value, "mobile-app")
    assert reason_of(lambda: enroll(ios_app, ios_device, binding)) == Reason.CHALLENGE_WRONG_PURPOSE
    assert Device.objects.count() == 0


def test_enroll_with_an_unknown_challenge(ios_app: RegisteredApp, ios_device: IOSDevice, binding_for: Any) -> None:
    assert reason_of(lambda: enroll(ios_app, ios_device, binding_for("made-up", "mobile-app"))) == Reason.CHALLENGE_UNKNOWN


def test_enroll_for_another_clients_binding_is_device_mismatch(
    ios_app: RegisteredApp, ios_device: IOSDevice, enroll_binding: RequestBinding, binding_for: Any
) -> None:
    binding = binding_for(enroll_binding.challenge, "other-client")
    assert reason_of(lambda: enroll(ios_app, ios_device, binding)) == Reason.DEVICE_MISMATCH


def test_enroll_with_another_clients_challenge_is_wrong_client(
    ios_app: RegisteredApp, ios_device: IOSDevice, client_factory: Callable[..., Any], binding_for: Any
) -> None:
    other = client_factory("other-client")
    binding = binding_for(issue_challenge(other, "enroll").value, "mobile-app")
    assert reason_of(lambda: enroll(ios_app, ios_device, binding)) == Reason.CHALLENGE_WRONG_CLIENT


def test_enroll_failure_is_recorded_and_registers_nothing(
    ios_app: RegisteredApp, ios_device: IOSDevice, enroll_binding: RequestBinding
) -> None:
    assert reason_of(lambda: enroll(ios_app, ios_device, enroll_binding, app_id="X.y")) == Reason.APP_ID_MISMATCH
    assert Device.objects.count() == 0
    event = last_event()
    assert (event.event_type, event.outcome, event.reason) == ("attestation.enroll", "failure", "app_id_mismatch")


def test_enroll_binding_tampered_after_attestation_is_nonce_mismatch(
    ios_app: RegisteredApp, ios_device: IOSDevice, enroll_binding: RequestBinding
) -> None:
    """The attacker swaps the code (grant_hash) after the device attested the original request."""
    attestation = ios_device.attest(enroll_binding.client_data_hash())
    tampered = RequestBinding(**{**enroll_binding.__dict__, "grant_hash": "stolen-code-hash"})
    assert reason_of(lambda: enroll_apple_device(ios_app, attestation, tampered)) == Reason.NONCE_MISMATCH


def test_enroll_development_key_on_production_app(
    ios_app: RegisteredApp, enroll_binding: RequestBinding
) -> None:
    device = IOSDevice(ios_app.app_id, environment="development")
    assert reason_of(lambda: enroll(ios_app, device, enroll_binding)) == Reason.AAGUID_MISMATCH


def test_enroll_on_an_android_app_is_device_mismatch(
    oauth_client: Any, ios_device: IOSDevice, enroll_binding: RequestBinding
) -> None:
    android = RegisteredApp.objects.create(client=oauth_client, platform="android", android_package_name="com.example")
    assert reason_of(lambda: enroll(android, ios_device, enroll_binding)) == Reason.DEVICE_MISMATCH


@pytest.mark.parametrize("action, reason", [(suspend_device, Reason.DEVICE_SUSPENDED), (revoke_device, Reason.DEVICE_REVOKED)])
def test_enroll_again_refused_when_suspended_or_revoked(
    enrolled: Device, ios_app: RegisteredApp, ios_device: IOSDevice, binding_for: Any, action: Any, reason: str
) -> None:
    action(enrolled, reason="lost phone")
    binding = binding_for(issue_challenge(ios_app.client, "enroll").value, "mobile-app")
    assert reason_of(lambda: enroll(ios_app, ios_device, binding)) == reason


# --------------------------------------------------------------------- assertions
def test_assert_advances_the_counter(
    enrolled: Device, ios_device: IOSDevice, refresh_binding_factory: Callable[[], RequestBinding]
) -> None:
    for expected in (1, 2, 3):
        binding = refresh_binding_factory()
        device = assert_apple_device(enrolled, ios_device.assert_(binding.client_data_hash()), binding)
        assert device.counter == expected
    enrolled.refresh_from_db()
    assert enrolled.counter == 3 and enrolled.last_asserted_at is not None
    assert last_event().event_type == "attestation.assert"


def test_replayed_assertion_is_refused(
    enrolled: Device, ios_device: IOSDevice, refresh_binding_factory: Callable[[], RequestBinding]
) -> None:
    first = refresh_binding_factory()
    assert_apple_device(enrolled, ios_device.assert_(first.client_data_hash()), first)
    second = refresh_binding_factory()
    stale = ios_device.assert_(second.client_data_hash(), counter=1)
    assert reason_of(lambda: assert_apple_device(enrolled, stale, second)) == Reason.COUNTER_NOT_INCREASING
    enrolled.refresh_from_db()
    assert enrolled.counter == 1
    event = last_event()
    assert (event.outcome, event.reason) == ("failure", "counter_not_increasing")


def test_assert_with_stale_in_memory_counter_is_still_refused(
    enrolled: Device, ios_device: IOSDevice, refresh_binding_factory: Callable[[], RequestBinding]
) -> None:
    """The counter check uses the database row, not a stale object another request loaded."""
    stale_copy = Device.objects.get(pk=enrolled.pk)
    binding = refresh_binding_factory()
    assert_apple_device(enrolled, ios_device.assert_(binding.client_data_hash(), counter=5), binding)
    binding = refresh_binding_factory()
    replay = ios_device.assert_(binding.client_data_hash(), counter=5)
    assert reason_of(lambda: assert_apple_device(stale_copy, replay, binding)) == Reason.COUNTER_NOT_INCREASING


def test_assert_with_an_enroll_challenge_is_wrong_purpose(
    enrolled: Device, ios_device: IOSDevice, ios_app: RegisteredApp, binding_for: Any
) -> None:
    binding = binding_for(issue_challenge(ios_app.client, "enroll").value, "mobile-app", grant="refresh_token")
    assertion = ios_device.assert_(binding.client_data_hash())
    assert reason_of(lambda: assert_apple_device(enrolled, assertion, binding)) == Reason.CHALLENGE_WRONG_PURPOSE
    enrolled.refresh_from_db()
    assert enrolled.counter == 0


def test_assert_signed_by_another_key_is_signature_invalid(
    enrolled: Device, refresh_binding_factory: Callable[[], RequestBinding]
) -> None:
    binding = refresh_binding_factory()
    thief = IOSDevice(enrolled.app.app_id)
    assertion = thief.assert_(binding.client_data_hash())
    assert reason_of(lambda: assert_apple_device(enrolled, assertion, binding)) == Reason.SIGNATURE_INVALID
    enrolled.refresh_from_db()
    assert enrolled.counter == 0


def test_assert_for_another_client_is_device_mismatch(
    enrolled: Device, ios_device: IOSDevice, client_factory: Callable[..., Any], binding_for: Any
) -> None:
    other = client_factory("other-client")
    binding = binding_for(issue_challenge(other, "refresh").value, "other-client", grant="refresh_token")
    assertion = ios_device.assert_(binding.client_data_hash())
    assert reason_of(lambda: assert_apple_device(enrolled, assertion, binding)) == Reason.DEVICE_MISMATCH


@pytest.mark.parametrize(
    "action, reason",
    [(suspend_device, Reason.DEVICE_SUSPENDED), (revoke_device, Reason.DEVICE_REVOKED),
     (require_reattestation, Reason.ATTESTATION_REQUIRED)],
    ids=["suspended", "revoked", "reattest"],
)
def test_assert_refused_by_device_status(
    enrolled: Device, ios_device: IOSDevice, refresh_binding_factory: Callable[[], RequestBinding], action: Any, reason: str
) -> None:
    stale_copy = Device.objects.get(pk=enrolled.pk)
    action(enrolled, reason="operator decision")
    binding = refresh_binding_factory()
    assertion = ios_device.assert_(binding.client_data_hash())
    assert reason_of(lambda: assert_apple_device(stale_copy, assertion, binding)) == reason
    assert Device.objects.get(pk=enrolled.pk).counter == 0


def test_reactivated_device_asserts_again(
    enrolled: Device, ios_device: IOSDevice, refresh_binding_factory: Callable[[], RequestBinding]
) -> None:
    suspend_device(enrolled, reason="check")
    reactivate_device(enrolled, reason="ok")
    binding = refresh_binding_factory()
    assert assert_apple_device(enrolled, ios_device.assert_(binding.client_data_hash()), binding).counter == 1


def test_operator_actions_are_security_events(enrolled: Device) -> None:
    suspend_device(enrolled, reason="lost")
    require_reattestation(enrolled, reason="os update")
    revoke_device(enrolled, reason="stolen")
    types = list(SecurityEvent.objects.order_by("pk").values_list("event_type", flat=True))[-3:]
    assert types == [
        "attestation.device.suspended",
        "attestation.device.reattestation_required",
        "attestation.device.revoked",
    ]
    enrolled.refresh_from_db()
    assert (enrolled.status, enrolled.status_reason) == (DeviceStatus.REVOKED, "stolen")


def test_assert_query_budget(
    enrolled: Device, ios_device: IOSDevice, refresh_binding_factory: Callable[[], RequestBinding],
    django_assert_max_num_queries: Any,
) -> None:
    binding = refresh_binding_factory()
    assertion = ios_device.assert_(binding.client_data_hash())
    device = Device.objects.select_related("app__client").get(pk=enrolled.pk)
    # device re-read, challenge lookup, challenge UPDATE (+ savepoint pair), counter UPDATE, event INSERT
    with django_assert_max_num_queries(7):
        assert_apple_device(device, assertion, binding)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_assertions_with_the_same_counter_succeed_once(
    ios_app: RegisteredApp, ios_device: IOSDevice, binding_for: Any
) -> None:
    binding = binding_for(issue_challenge(ios_app.client, "enroll").value, "mobile-app")
    device = enroll(ios_app, ios_device, binding)
    attempts = []
    for _ in range(6):
        b = binding_for(issue_challenge(ios_app.client, "refresh").value, "mobile-app", grant="refresh_token")
        attempts.append((b, ios_device.assert_(b.client_data_hash(), counter=1)))
    results: list[str] = []

    def run(b: RequestBinding, assertion: bytes) -> None:
        try:
            assert_apple_device(Device.objects.get(pk=device.pk), assertion, b)
            results.append("ok")
        except AttestationError as exc:
            results.append(exc.reason)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=attempt) for attempt in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("ok") == 1
    assert set(results) == {"ok", Reason.COUNTER_NOT_INCREASING}


# --------------------------------------------------------------------- admin
@pytest.fixture
def admin_client(client: Any, django_user_model: Any) -> Any:
    from accounts.testing import sign_in_with_second_factor

    user = django_user_model.objects.create_superuser(username="root", email="root@example.com", password="x" * 12)
    return sign_in_with_second_factor(client, user, "x" * 12)


@pytest.mark.parametrize(
    "action, event_type",
    [("suspend", "attestation.device.suspended"), ("revoke", "attestation.device.revoked"),
     ("require_reattestation", "attestation.device.reattestation_required")],
)
def test_admin_actions_record_security_events(admin_client: Any, enrolled: Device, action: str, event_type: str) -> None:
    from django.urls import reverse

    url = reverse("admin:attestation_device_changelist")
    response = admin_client.post(url, {"action": action, "_selected_action": [enrolled.pk]})
    assert response.status_code == 302
    event = last_event()
    assert event.user is not None and (event.event_type, event.user.username) == (event_type, "root")


def test_admin_device_list_filters_and_search(admin_client: Any, enrolled: Device) -> None:
    from django.urls import reverse

    url = reverse("admin:attestation_device_changelist")
    assert admin_client.get(url, {"platform": "ios", "status": "active"}).status_code == 200
    response = admin_client.get(url, {"q": enrolled.key_id[:10]})
    assert enrolled.key_id in response.content.decode()


def test_admin_stores_play_integrity_keys_encrypted(admin_client: Any, client_factory: Callable[..., Any]) -> None:
    import base64

    from django.urls import reverse

    client = client_factory("android-app")
    data = {
        "client": client.pk, "platform": "android", "android_package_name": "com.example.app",
        "android_signing_cert_digests": "[]", "ios_environment": "production", "min_integrity_level": "device",
        "play_integrity_max_age_minutes": 0, "require_attestation": "on", "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00", "devicecheck_mode": "off", "devicecheck_on_failure": "fail_closed",
        "play_integrity_decryption_key": base64.b64encode(b"k" * 32).decode(),
        "play_integrity_verification_key": base64.b64encode(b"v" * 91).decode(),
    }
    response = admin_client.post(reverse("admin:attestation_registeredapp_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    app = RegisteredApp.objects.get(client=client)
    assert app.play_integrity_decryption_key() == b"k" * 32
    assert app.play_integrity_verification_key() == b"v" * 91
    assert "kkkk" not in app.play_integrity_decryption_key_encrypted


def test_system_check_refuses_test_roots_in_production(settings: Any) -> None:
    from attestation.checks import check_test_roots

    settings.ATTESTATION_ALLOW_TEST_ROOTS = True
    settings.DEBUG, settings.TESTING = False, False
    assert [e.id for e in check_test_roots()] == ["attestation.E001"]
    settings.TESTING = True
    assert check_test_roots() == []


def test_system_check_apple_roots(settings: Any, tmp_path: Any) -> None:
    from attestation.checks import check_apple_roots

    assert check_apple_roots() == []
    settings.ATTESTATION_APPLE_ROOT_CERTS = f"{tmp_path / 'missing.pem'}"
    assert [e.id for e in check_apple_roots()] == ["attestation.E002"]


def test_deleting_devices_in_the_admin_is_recorded(admin_client: Any, enrolled: Device) -> None:
    """The delete page and the changelist's action: one ``attestation.device.deleted`` per
    device gone, naming its key, status and the admin. A device with a token family is
    protected: the page says so, and nothing is deleted or recorded."""
    from django.contrib.auth import get_user_model
    from django.urls import reverse
    from django.utils import timezone

    from sessions.models import DeviceSession

    revoke_device(enrolled, reason="stolen")
    second = Device.objects.get(pk=enrolled.pk)
    second.pk, second.key_id, second.status = None, "second-key", DeviceStatus.ACTIVE
    second.save()
    kept = Device.objects.get(pk=enrolled.pk)
    kept.pk, kept.key_id = None, "kept-key"
    kept.save()
    DeviceSession.objects.create(sid="s-kept", user=get_user_model().objects.get(username="root"), client=enrolled.app.client, auth_time=timezone.now(),
                                 device=kept)
    before = SecurityEvent.objects.count()

    protected = admin_client.post(reverse("admin:attestation_device_delete", args=[kept.pk]), {"post": "yes"})
    assert protected.status_code == 200 and "protected" in protected.content.decode().lower()
    assert Device.objects.filter(pk=kept.pk).exists() and SecurityEvent.objects.count() == before

    page = admin_client.post(reverse("admin:attestation_device_delete", args=[enrolled.pk]), {"post": "yes"})
    assert page.status_code == 302
    action = admin_client.post(reverse("admin:attestation_device_changelist"),
                               {"action": "delete_selected", "_selected_action": [second.pk], "post": "yes"})
    assert action.status_code == 302
    assert list(Device.objects.values_list("key_id", flat=True)) == ["kept-key"]
    events = SecurityEvent.objects.filter(event_type="attestation.device.deleted").select_related("user").order_by("pk")
    assert [(e.details["key_id"], e.details["status"], e.user and e.user.username) for e in events] == [
        (enrolled.key_id, DeviceStatus.REVOKED, "root"), ("second-key", DeviceStatus.ACTIVE, "root")]
