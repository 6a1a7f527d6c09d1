"""Android device flows: enrollment (Key Attestation + Play Integrity) and refresh (key
signature + verdict), with the device simulator, the test PKI and the Google stand-in."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attestation.binding import RequestBinding, grant_hash
from attestation.errors import AttestationError, Reason
from attestation.flows.android_devices import chain_from_wire, enroll_android_device, verify_android_refresh
from attestation.flows.challenges import issue_challenge
from attestation.models import Device, DeviceStatus, Platform, RegisteredApp, SecurityLevel
from attestation.testing import google_pki as g
from core.models import SecurityEvent
from simulator.android import AndroidDevice

pytestmark = [pytest.mark.django_db, pytest.mark.live]


@pytest.fixture
def android_app(oauth_client: Any, allow_test_roots: None) -> RegisteredApp:
    app = RegisteredApp.objects.create(
        client=oauth_client,
        platform=Platform.ANDROID,
        android_package_name=g.TEST_PACKAGE,
        android_signing_cert_digests=[base64.b64encode(g.TEST_SIGNING_DIGEST).decode()],
    )
    aes, spki = (base64.b64decode(k) for k in g.play_keys_b64())
    app.set_play_integrity_keys(aes, spki)
    app.save()
    return app


@pytest.fixture
def phone(google: g.GoogleStandIn) -> AndroidDevice:
    return AndroidDevice(google=google)


@pytest.fixture
def binding(android_app: RegisteredApp) -> Callable[..., RequestBinding]:
    def make(purpose: str = "enroll", **extra: Any) -> RequestBinding:
        issued = issue_challenge(android_app.client, purpose)
        grant = "authorization_code" if purpose == "enroll" else "refresh_token"
        return RequestBinding(issued.value, android_app.client.client_id, grant, grant_hash("secret"), **extra)

    return make


def enroll(
    app: RegisteredApp, phone: AndroidDevice, b: RequestBinding, integrity: str = "standard", **forge: Any
) -> Device:
    chain = phone.attest(b.client_data_hash(), **forge)
    return enroll_android_device(app, chain, phone.integrity_token(b, integrity), b, integrity_token_type=integrity)


def failure(fn: Callable[[], Any]) -> str:
    with pytest.raises(AttestationError) as info:
        fn()
    return info.value.reason


def events(outcome: str) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(outcome=outcome, event_type__startswith="attestation."))


@pytest.mark.parametrize("integrity", ["standard", "classic"])
def test_enroll_then_refresh(android_app: RegisteredApp, phone: AndroidDevice, binding: Any, integrity: str) -> None:
    device = enroll(android_app, phone, binding(), integrity)
    assert device.platform == Platform.ANDROID and device.security_level == SecurityLevel.TEE
    assert device.verdict["key_attestation"]["os_patch_level"] == int(dt.datetime.now(dt.UTC).strftime("%Y%m"))
    assert device.verdict["play_integrity"]["token_type"] == integrity
    for _ in range(3):
        b = binding("refresh")
        verify_android_refresh(
            device, phone.sign(b), phone.integrity_token(b, integrity), b, integrity_token_type=integrity
        )
    device.refresh_from_db()
    assert device.last_asserted_at is not None
    assert [e.reason for e in events("success")] == [""] * 4


def test_strongbox_device(android_app: RegisteredApp, google: g.GoogleStandIn, binding: Any) -> None:
    phone = AndroidDevice(google=google, security_level="StrongBox")
    assert enroll(android_app, phone, binding()).security_level == SecurityLevel.STRONGBOX


def test_wire_chain_as_comma_separated_der(phone: AndroidDevice) -> None:
    from attestation.android.chain import split_pem

    pem = phone.attest(b"c" * 32)
    wire = ",".join(base64.urlsafe_b64encode(d).decode().rstrip("=") for d in split_pem(pem))
    assert split_pem(chain_from_wire(wire)) == split_pem(pem)


def test_reenrolling_the_same_key_recognises_the_device(
    android_app: RegisteredApp, phone: AndroidDevice, binding: Any
) -> None:
    first = enroll(android_app, phone, binding())
    again = enroll(android_app, phone, binding())
    assert again.pk == first.pk and Device.objects.count() == 1


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        ({"verified_boot_state": "Unverified"}, Reason.BOOT_STATE_UNVERIFIED),
        ({"device_locked": False}, Reason.BOOTLOADER_UNLOCKED),
        ({"attestation_security_level": "Software"}, Reason.SECURITY_LEVEL_INSUFFICIENT),
        ({"packages": (("com.evil", 1),)}, Reason.PACKAGE_MISMATCH),
    ],
)
def test_enroll_refusals_are_events_and_store_nothing(
    android_app: RegisteredApp, phone: AndroidDevice, binding: Any, forge: dict[str, Any], reason: str
) -> None:
    assert failure(lambda: enroll(android_app, phone, binding(), **forge)) == reason
    assert Device.objects.count() == 0
    assert [e.reason for e in events("failure")] == [reason]


def test_chain_for_another_challenge(android_app: RegisteredApp, phone: AndroidDevice, binding: Any) -> None:
    b = binding()
    chain = phone.attest(binding().client_data_hash())
    assert (
        failure(lambda: enroll_android_device(android_app, chain, phone.standard_token(b), b))
        == Reason.CHALLENGE_MISMATCH
    )


def test_enroll_needs_an_integrity_token(android_app: RegisteredApp, phone: AndroidDevice, binding: Any) -> None:
    b = binding()
    chain = phone.attest(b.client_data_hash())
    assert failure(lambda: enroll_android_device(android_app, chain, None, b)) == Reason.INTEGRITY_TOKEN_REQUIRED


def test_enroll_with_weak_integrity(android_app: RegisteredApp, google: g.GoogleStandIn, binding: Any) -> None:
    phone = AndroidDevice(google=google, device_verdicts=("MEETS_BASIC_INTEGRITY",))
    assert failure(lambda: enroll(android_app, phone, binding())) == Reason.INTEGRITY_VERDICT_INSUFFICIENT
    android_app.min_integrity_level = "basic"
    android_app.save()
    assert enroll(android_app, phone, binding())


def test_challenge_is_single_use(android_app: RegisteredApp, phone: AndroidDevice, binding: Any) -> None:
    b = binding()
    enroll(android_app, phone, b)
    assert failure(lambda: enroll(android_app, phone, b)) == Reason.CHALLENGE_REUSED


def test_refresh_challenge_cannot_enroll(android_app: RegisteredApp, phone: AndroidDevice, binding: Any) -> None:
    assert failure(lambda: enroll(android_app, phone, binding("refresh"))) == Reason.CHALLENGE_WRONG_PURPOSE


def test_classic_token_without_registered_keys(android_app: RegisteredApp, phone: AndroidDevice, binding: Any) -> None:
    android_app.play_integrity_decryption_key_encrypted = ""
    android_app.save()
    assert failure(lambda: enroll(android_app, phone, binding(), "classic")) == Reason.INTEGRITY_TOKEN_INVALID


def test_ios_app_cannot_enroll_android(ios_app: RegisteredApp, phone: AndroidDevice, binding_for: Any) -> None:
    b = binding_for(issue_challenge(ios_app.client, "enroll").value, ios_app.client.client_id)
    assert failure(lambda: enroll(ios_app, phone, b)) == Reason.DEVICE_MISMATCH


# ------------------------------------------------------------------ refresh
@pytest.fixture
def enrolled(android_app: RegisteredApp, phone: AndroidDevice, binding: Any) -> Device:
    return enroll(android_app, phone, binding())


def test_refresh_signed_by_another_key(enrolled: Device, phone: AndroidDevice, binding: Any) -> None:
    b = binding("refresh")
    thief = ec.generate_private_key(ec.SECP256R1())
    got = failure(lambda: verify_android_refresh(enrolled, phone.sign(b, key=thief), phone.standard_token(b), b))
    assert got == Reason.SIGNATURE_INVALID


def test_refresh_signature_over_another_binding(enrolled: Device, phone: AndroidDevice, binding: Any) -> None:
    b, other = binding("refresh"), binding("refresh")
    assert (
        failure(lambda: verify_android_refresh(enrolled, phone.sign(other), phone.standard_token(b), b))
        == Reason.SIGNATURE_INVALID
    )


def test_refresh_verdict_for_another_request(enrolled: Device, phone: AndroidDevice, binding: Any) -> None:
    b, other = binding("refresh"), binding("refresh")
    got = failure(lambda: verify_android_refresh(enrolled, phone.sign(b), phone.standard_token(other), b))
    assert got == Reason.REQUEST_HASH_MISMATCH


def test_stale_verdict(enrolled: Device, phone: AndroidDevice, binding: Any) -> None:
    b = binding("refresh")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    assert (
        failure(lambda: verify_android_refresh(enrolled, phone.sign(b), phone.standard_token(b, now=old), b))
        == Reason.VERDICT_STALE
    )


def test_verdict_required_unless_policy_allows_reuse(enrolled: Device, phone: AndroidDevice, binding: Any) -> None:
    b = binding("refresh")
    assert failure(lambda: verify_android_refresh(enrolled, phone.sign(b), None, b)) == Reason.INTEGRITY_TOKEN_REQUIRED
    app = enrolled.app
    app.play_integrity_max_age_minutes = 15
    app.save()
    b = binding("refresh")
    assert verify_android_refresh(enrolled, phone.sign(b), None, b)
    verdict = Device.objects.get(pk=enrolled.pk).verdict
    verdict["play_integrity"]["timestamp"] = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)).isoformat()
    Device.objects.filter(pk=enrolled.pk).update(verdict=verdict)
    enrolled = Device.objects.get(pk=enrolled.pk)  # each token request reads the device afresh
    b = binding("refresh")
    assert failure(lambda: verify_android_refresh(enrolled, phone.sign(b), None, b)) == Reason.INTEGRITY_TOKEN_REQUIRED
    b = binding("refresh")
    assert verify_android_refresh(enrolled, phone.sign(b), phone.standard_token(b), b)
    b = binding("refresh")
    assert verify_android_refresh(enrolled, phone.sign(b), None, b)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(DeviceStatus.SUSPENDED, Reason.DEVICE_SUSPENDED), (DeviceStatus.REVOKED, Reason.DEVICE_REVOKED)],
)
def test_refresh_of_a_suspended_or_revoked_device(
    enrolled: Device, phone: AndroidDevice, binding: Any, status: str, reason: str
) -> None:
    Device.objects.get(pk=enrolled.pk).set_status(status, "admin")
    b = binding("refresh")
    assert failure(lambda: verify_android_refresh(enrolled, phone.sign(b), phone.standard_token(b), b)) == reason
    assert events("failure")[-1].reason == reason


def test_refresh_requires_reattestation_flag(enrolled: Device, phone: AndroidDevice, binding: Any) -> None:
    Device.objects.filter(pk=enrolled.pk).update(requires_reattestation=True)
    b = binding("refresh")
    assert (
        failure(lambda: verify_android_refresh(enrolled, phone.sign(b), phone.standard_token(b), b))
        == Reason.ATTESTATION_REQUIRED
    )


def test_refresh_with_a_binding_of_another_client(enrolled: Device, phone: AndroidDevice, client_factory: Any) -> None:
    other = client_factory()
    b = RequestBinding(issue_challenge(other, "refresh").value, other.client_id, "refresh_token", grant_hash("s"))
    assert (
        failure(lambda: verify_android_refresh(enrolled, phone.sign(b), phone.standard_token(b), b))
        == Reason.DEVICE_MISMATCH
    )


def test_google_outage_on_refresh_is_api_unavailable(
    enrolled: Device, phone: AndroidDevice, google: g.GoogleStandIn, binding: Any
) -> None:
    b = binding("refresh")
    token = phone.standard_token(b)
    google.fail_with = 503
    assert (
        failure(lambda: verify_android_refresh(enrolled, phone.sign(b), token, b)) == Reason.INTEGRITY_API_UNAVAILABLE
    )


def test_wire_chain_length_is_bounded() -> None:
    assert failure(lambda: chain_from_wire(",".join(["AAAA"] * 11))) == Reason.MALFORMED_CERTIFICATE


def test_failed_refresh_changes_nothing_on_the_device(enrolled: Device, phone: AndroidDevice, binding: Any) -> None:
    before = Device.objects.get(pk=enrolled.pk)
    b = binding("refresh")
    weak = phone.standard_token(b, device_verdicts=("MEETS_BASIC_INTEGRITY",))
    assert (
        failure(lambda: verify_android_refresh(enrolled, phone.sign(b), weak, b))
        == Reason.INTEGRITY_VERDICT_INSUFFICIENT
    )
    after = Device.objects.get(pk=enrolled.pk)
    assert (after.verdict, after.last_asserted_at, after.status) == (
        before.verdict,
        before.last_asserted_at,
        before.status,
    )


def test_refresh_query_budget(
    enrolled: Device, phone: AndroidDevice, binding: Any, django_assert_max_num_queries: Any
) -> None:
    b = binding("refresh")
    token = phone.classic_token(b)
    signature = phone.sign(b)
    with django_assert_max_num_queries(10):
        verify_android_refresh(enrolled, signature, token, b, integrity_token_type="classic")


def test_a_new_verdict_is_merged_into_what_the_device_row_holds_now(
    enrolled: Device, phone: AndroidDevice, binding: Any
) -> None:
    """Issue 19: on PostgreSQL the merge happens inside the conditional UPDATE (``jsonb ||``),
    so a key written by another process after this request read the device is kept."""
    stored = Device.objects.get(pk=enrolled.pk).verdict
    Device.objects.filter(pk=enrolled.pk).update(verdict={**stored, "written_meanwhile": {"by": "revalidation"}})
    b = binding("refresh")
    verify_android_refresh(enrolled, phone.sign(b), phone.classic_token(b), b, integrity_token_type="classic")
    after = Device.objects.get(pk=enrolled.pk).verdict
    assert after["written_meanwhile"] == {"by": "revalidation"}
    assert after["key_attestation"] == stored["key_attestation"]
    assert after["play_integrity"]["token_type"] == "classic" and after["play_integrity"] != stored.get("play_integrity")
    assert enrolled.verdict == after  # the request goes on with what was stored


def test_a_device_suspended_during_the_request_is_refused_and_keeps_its_verdict(
    enrolled: Device, phone: AndroidDevice, binding: Any
) -> None:
    b = binding("refresh")
    token, signature = phone.classic_token(b), phone.sign(b)
    Device.objects.filter(pk=enrolled.pk).update(status=DeviceStatus.SUSPENDED, status_reason="operator")
    before = Device.objects.get(pk=enrolled.pk)
    with pytest.raises(AttestationError):
        verify_android_refresh(enrolled, signature, token, b, integrity_token_type="classic")
    after = Device.objects.get(pk=enrolled.pk)
    assert (after.verdict, after.last_asserted_at, after.status) == (before.verdict, before.last_asserted_at,
                                                                      DeviceStatus.SUSPENDED)


# ------------------------------------------------------------------ the stored revocation list
def _revocation_queries(fn: Callable[[], Any]) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from attestation.models import AndroidRevocationList

    with CaptureQueriesContext(connection) as captured:
        fn()
    return [q["sql"] for q in captured.captured_queries if AndroidRevocationList._meta.db_table in q["sql"]]


@pytest.mark.redis
def test_a_warm_enrollment_reads_the_revocation_list_from_memory(
    android_app: RegisteredApp, google: g.GoogleStandIn, binding: Any
) -> None:
    from attestation.android.revocation_store import store_status_list

    store_status_list({"entries": {"5ca1ab1e0ddba11": {"status": "REVOKED"}}}, source="test", now=dt.datetime.now(dt.UTC))
    assert len(_revocation_queries(lambda: enroll(android_app, AndroidDevice(google=google), binding()))) == 1
    assert _revocation_queries(lambda: enroll(android_app, AndroidDevice(google=google), binding())) == []
    assert Device.objects.count() == 2


def test_a_certificate_revoked_in_the_stored_list_refuses_enrollment(
    android_app: RegisteredApp, google: g.GoogleStandIn, phone: AndroidDevice, binding: Any
) -> None:
    from attestation.android.revocation_store import store_status_list

    serials = enroll(android_app, phone, binding()).verdict["key_attestation"]["chain_serials"]
    store_status_list({"entries": {serials[1]: {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}},
                      source="test", now=dt.datetime.now(dt.UTC))
    assert failure(lambda: enroll(android_app, AndroidDevice(google=google), binding())) == Reason.CERTIFICATE_REVOKED
    assert Device.objects.count() == 1
    assert [e.reason for e in events("failure")] == [Reason.CERTIFICATE_REVOKED]


def test_an_unreadable_stored_list_refuses_enrollment(
    android_app: RegisteredApp, phone: AndroidDevice, binding: Any
) -> None:
    from attestation.models import AndroidRevocationList
    from core import config_cache

    AndroidRevocationList.objects.create(entries={"not-hex": "REVOKED"}, entry_count=1, sha256="", source="forged",
                                         fetched_at=dt.datetime.now(dt.UTC), checked_at=dt.datetime.now(dt.UTC))
    config_cache.changed()
    assert failure(lambda: enroll(android_app, phone, binding())) == Reason.REVOCATION_LIST_UNAVAILABLE
    assert Device.objects.count() == 0
    assert [e.reason for e in events("failure")] == [Reason.REVOCATION_LIST_UNAVAILABLE]


def test_the_suspension_task_reads_the_stored_list(android_app: RegisteredApp, phone: AndroidDevice, binding: Any) -> None:
    """``sessions.suspend_revoked_android_devices`` without a path: the list every host reads."""
    from attestation.android.revocation_store import store_status_list
    from sessions.tasks import suspend_revoked_android_devices

    device = enroll(android_app, phone, binding())
    assert suspend_revoked_android_devices.apply().get() == 0
    intermediate = device.verdict["key_attestation"]["chain_serials"][1]
    store_status_list({"entries": {intermediate: {"status": "REVOKED"}}}, source="test", now=dt.datetime.now(dt.UTC))
    assert suspend_revoked_android_devices.apply().get() == 1
    device.refresh_from_db()
    assert device.status == DeviceStatus.SUSPENDED and intermediate in device.status_reason
