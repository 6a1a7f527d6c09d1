"""Issue 17 §1 through the real token endpoint: the verifiers establish authenticity, the
client's device-health policy decides what the facts earn.

* defaults: every device refused before graded trust is still refused, at enrollment and at
  refresh, with the same ``invalid_client_attestation`` reason, and nothing is stored;
* a client that chose ``reduce`` for a rooted / unlocked / software-key device gets it end to
  end (narrow, short-lived tokens marked ``device_health: "reduced"``, at every refresh, in
  userinfo and introspection); step-up and deny work;
* forged or inconsistent evidence is refused even when the policy allows every fact.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.test import Client as HttpClient
from django.urls import reverse

from attestation.binding import RequestBinding
from attestation.models import Device
from attestation.testing import google_pki as g
from core.models import SecurityEvent
from device_health import choices
from device_health.models import DeviceHealth, HealthOutcome, HealthRule
from idp.tests.conftest import browser, form_post, mobile_client, service_client, user  # noqa: F401
from sessions.models import AccessToken, DeviceSession, RefreshToken
from simulator.android import AndroidDevice

from .test_health_token_endpoint import FULL, HealthApp, access_claims, android_app, fresh_patch  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]

ROOTED = {"verified_boot_state": "Unverified", "device_locked": False}
G = choices.GradedFact
ALLOW = HealthOutcome.ALLOW


@dataclass
class Phone(AndroidDevice):
    """The simulator, with a verdict to forge and a chain to tamper with."""

    verdict_forge: dict[str, Any] = field(default_factory=dict)
    tamper: bool = False

    def verdict(self, binding: RequestBinding, **kw: Any) -> dict[str, Any]:
        forge = dict(self.verdict_forge)
        strip = forge.pop("strip_app_details", False)
        verdict = super().verdict(binding, **{**kw, **forge})
        if strip:  # as Google sends UNEVALUATED: no package, certificate or version
            verdict["appIntegrity"] = {"appRecognitionVerdict": verdict["appIntegrity"]["appRecognitionVerdict"]}
        return verdict

    def attest(self, challenge: bytes, **kw: Any) -> str:
        pem = super().attest(kw.pop("attested_challenge", challenge), **kw)
        if not self.tamper:
            return pem
        certs = x509.load_pem_x509_certificates(pem.encode())
        leaf = bytearray(certs[0].public_bytes(serialization.Encoding.DER))
        leaf[-1] ^= 0x01  # a bit of the leaf's signature
        rest = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs[1:])
        body = base64.encodebytes(bytes(leaf)).decode()
        return f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n{rest}"


@pytest.fixture
def phone(browser: Any, mobile_client: Any, android_app: Any, google: g.GoogleStandIn) -> HealthApp:
    return HealthApp(browser, mobile_client.client.client_id, Phone(google=google))


def choose(client: Any, *picked: tuple[G, HealthOutcome], levels: dict[str, HealthOutcome] | None = None) -> None:
    made = [choices.FactChoice(fact, outcome) for fact, outcome in picked]
    made += [choices.FactChoice(G.INTEGRITY_BELOW, outcome, level) for level, outcome in (levels or {}).items()]
    choices.choose(client, made)


def allow_everything(client: Any) -> None:
    choose(client, *[(fact, ALLOW) for fact in choices.RULE_NAMES], levels={"strong": ALLOW})


def nothing_stored() -> None:
    assert Device.objects.count() == 0 and DeviceHealth.objects.count() == 0
    assert DeviceSession.objects.count() == 0
    assert AccessToken.objects.count() == 0 and RefreshToken.objects.count() == 0


def refused(response: Any, reason: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_client_attestation"
    assert body["error_description"] == f"Device attestation failed: {reason}."


SOFTWARE = {"attestation_security_level": "Software"}
ENROLLMENT_REFUSALS = [
    pytest.param({"verified_boot_state": "Unverified"}, {}, "boot_state_unverified", id="unverified-boot"),
    pytest.param({"verified_boot_state": "SelfSigned"}, {}, "boot_state_unverified", id="self-signed-boot"),
    pytest.param({"device_locked": False}, {}, "bootloader_unlocked", id="unlocked"),
    pytest.param(ROOTED, {}, "boot_state_unverified", id="rooted-and-unlocked"),
    pytest.param(SOFTWARE, {}, "security_level_insufficient", id="software-key"),
    pytest.param({}, {"device_verdicts": ("MEETS_BASIC_INTEGRITY",)}, "integrity_verdict_insufficient", id="basic"),
    pytest.param({}, {"device_verdicts": None}, "integrity_verdict_insufficient", id="no-integrity"),
    pytest.param({}, {"app_verdict": "UNRECOGNIZED_VERSION"}, "app_not_recognized", id="unrecognized"),
    pytest.param({}, {"licensing": "UNLICENSED"}, "unlicensed", id="unlicensed"),
]


# ------------------------------------------------------------------ defaults: as strict as before


@pytest.mark.parametrize(("leaf", "verdict", "reason"), ENROLLMENT_REFUSALS)
def test_default_client_refuses_at_enrollment_as_before_and_stores_nothing(
    phone: HealthApp, leaf: dict[str, Any], verdict: dict[str, Any], reason: str
) -> None:
    phone.leaf = {**fresh_patch(), **leaf}
    phone.device.verdict_forge = verdict
    refused(phone.login(), reason)
    nothing_stored()
    event = SecurityEvent.objects.get(event_type="attestation.enroll")
    assert event.outcome == "failure" and event.reason == reason


@pytest.mark.parametrize(("leaf", "verdict", "reason"), ENROLLMENT_REFUSALS)
def test_a_policy_without_choices_refuses_as_before(
    phone: HealthApp, mobile_client: Any, leaf: dict[str, Any], verdict: dict[str, Any], reason: str
) -> None:
    """Other rules, and even the other defaults turned off, never relax a graded fact."""
    from device_health.models import HealthPolicy

    policy = HealthPolicy.objects.create(client=mobile_client.client, include_default_rules=False)
    HealthRule.objects.create(policy=policy, name="no-debugger", condition="debugger_attached", outcome="deny")
    phone.leaf = {**fresh_patch(), **leaf}
    phone.device.verdict_forge = verdict
    refused(phone.login(), reason)
    nothing_stored()


@pytest.mark.parametrize(("verdict", "reason"), [
    ({"device_verdicts": ("MEETS_BASIC_INTEGRITY",)}, "integrity_verdict_insufficient"),
    ({"app_verdict": "UNEVALUATED"}, "app_not_recognized"),
    ({"licensing": "UNLICENSED"}, "unlicensed"),
])
def test_default_client_refuses_a_refresh_verdict_as_before(
    phone: HealthApp, verdict: dict[str, Any], reason: str
) -> None:
    assert phone.login().status_code == 200
    tokens = (AccessToken.objects.count(), RefreshToken.objects.count())
    phone.device.verdict_forge = verdict
    refused(phone.refresh(), reason)
    assert (AccessToken.objects.count(), RefreshToken.objects.count()) == tokens
    assert DeviceHealth.objects.get().outcome == HealthOutcome.ALLOW


def test_allow_software_keys_still_means_what_it_says(phone: HealthApp, android_app: Any) -> None:
    android_app.allow_software_keys = True
    android_app.save()
    phone.leaf = {**fresh_patch(), **SOFTWARE}
    response = phone.login()
    assert response.status_code == 200 and set(access_claims(response)["scope"].split()) == FULL
    assert Device.objects.get().security_level == "software"
    assert DeviceHealth.objects.get().facts["key_security_level"]["value"] == "software"


def test_min_integrity_level_still_means_what_it_says(phone: HealthApp, android_app: Any) -> None:
    android_app.min_integrity_level = "basic"
    android_app.save()
    phone.device.verdict_forge = {"device_verdicts": ("MEETS_BASIC_INTEGRITY",)}
    assert phone.login().status_code == 200
    phone.device.verdict_forge = {"device_verdicts": ("MEETS_VIRTUAL_INTEGRITY",)}
    refused(phone.refresh(), "integrity_verdict_insufficient")


# ------------------------------------------------------------------ reduce, step-up, deny by choice


def test_rooted_device_gets_reduced_access_end_to_end(
    phone: HealthApp, mobile_client: Any, service_client: Any
) -> None:
    from idp.tests.test_token import basic

    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, HealthOutcome.REDUCE),
           (G.BOOTLOADER_UNLOCKED, HealthOutcome.REDUCE))
    phone.leaf = {**fresh_patch(), **ROOTED}
    response = phone.login()
    assert response.status_code == 200, response.content
    claims = access_claims(response)
    assert claims["scope"] == "openid profile" and claims["device_health"] == "reduced"
    assert claims["exp"] - claims["iat"] == 120 and response.json()["expires_in"] == 120
    snapshot = DeviceHealth.objects.get()
    assert snapshot.outcome == HealthOutcome.REDUCE and snapshot.deciding_rule == "rooted-boot"
    assert snapshot.facts["verified_boot_state"] == {
        "value": "Unverified", "source": "android_key_attestation", "trust": "hardware_attested"}
    assert snapshot.facts["bootloader_locked"]["value"] is False
    assert {f["rule"] for f in snapshot.findings} == {"rooted-boot", "unlocked-bootloader"}
    for _ in range(2):  # every refresh decides again, and stays reduced
        again = phone.refresh()
        assert again.status_code == 200, again.content
        assert access_claims(again)["scope"] == "openid profile"
        assert access_claims(again)["device_health"] == "reduced"
    token = again.json()["access_token"]
    info = HttpClient().get(reverse("userinfo"), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert info.status_code == 200 and "email" not in info.json()
    body = form_post(HttpClient(), reverse("introspect"), {"token": token},
                     HTTP_AUTHORIZATION=basic(service_client.client.client_id, service_client.secret)).json()
    assert body["active"] is True and body["scope"] == "openid profile" and body["device_health"] == "reduced"


def test_software_key_can_be_reduced(phone: HealthApp, mobile_client: Any) -> None:
    choose(mobile_client.client, (G.SOFTWARE_KEY, HealthOutcome.REDUCE))
    phone.leaf = {**fresh_patch(), **SOFTWARE}
    response = phone.login()
    assert response.status_code == 200 and access_claims(response)["device_health"] == "reduced"
    assert DeviceHealth.objects.get().deciding_rule == "software-key"
    assert DeviceHealth.objects.get().facts["os_patch_level"]["trust"] == "software_attested"


def test_integrity_levels_graded_per_level(phone: HealthApp, mobile_client: Any) -> None:
    choose(mobile_client.client, levels={"device": HealthOutcome.REDUCE, "basic": HealthOutcome.DENY})
    phone.device.verdict_forge = {"device_verdicts": ("MEETS_BASIC_INTEGRITY",)}
    response = phone.login()
    assert response.status_code == 200 and access_claims(response)["scope"] == "openid profile"
    assert DeviceHealth.objects.get().deciding_rule == "integrity-below-device"
    phone.device.verdict_forge = {"device_verdicts": ("MEETS_VIRTUAL_INTEGRITY",)}
    refused(phone.refresh(), "integrity_verdict_insufficient")  # below basic: denied, by the verifier


def test_unlicensed_and_unrecognised_app_can_be_allowed(phone: HealthApp, mobile_client: Any) -> None:
    choose(mobile_client.client, (G.APP_NOT_RECOGNIZED, ALLOW), (G.APP_UNLICENSED, ALLOW))
    # UNEVALUATED: Google names no package or certificate (nothing to contradict the registered ones)
    phone.device.verdict_forge = {"app_verdict": "UNEVALUATED", "licensing": "UNEVALUATED", "strip_app_details": True}
    response = phone.login()
    assert response.status_code == 200 and set(access_claims(response)["scope"].split()) == FULL
    facts = DeviceHealth.objects.get().facts
    assert facts["genuine_app"]["value"] is False and facts["app_licensed"]["value"] is False


def test_step_up_by_choice_passes_a_fresh_login_and_refuses_the_refresh(phone: HealthApp, mobile_client: Any) -> None:
    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, HealthOutcome.STEP_UP))
    phone.leaf = {**fresh_patch(), "verified_boot_state": "Unverified"}
    assert phone.login().status_code == 200  # the user just authenticated
    response = phone.refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert "Step-up required" in response.json()["error_description"]
    assert DeviceHealth.objects.get().outcome == HealthOutcome.STEP_UP


def test_deny_by_choice_is_the_verifier_refusal(phone: HealthApp, mobile_client: Any) -> None:
    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, HealthOutcome.DENY),
           (G.BOOTLOADER_UNLOCKED, HealthOutcome.REDUCE))
    phone.leaf = {**fresh_patch(), **ROOTED}
    refused(phone.login(), "boot_state_unverified")
    nothing_stored()


def test_tightening_the_choice_denies_an_enrolled_device_at_its_next_refresh(
    phone: HealthApp, mobile_client: Any
) -> None:
    """Key Attestation facts are not attested again at a refresh: the stored facts meet the
    new rule there (the second line), as ``invalid_grant``; the snapshot says why."""
    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, HealthOutcome.REDUCE))
    phone.leaf = {**fresh_patch(), "verified_boot_state": "Unverified"}
    assert phone.login().status_code == 200
    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, HealthOutcome.DENY))
    response = phone.refresh()
    assert response.json()["error"] == "invalid_grant" and "rule rooted-boot" in response.json()["error_description"]
    assert DeviceHealth.objects.get().outcome == HealthOutcome.DENY


# ------------------------------------------------------------------ forged evidence: always refused

FOREIGN_ROOT = g.make_ca("foreign-root", None, title=None)
FORGERIES = [
    pytest.param({"attested_challenge": b"\x00" * 32}, {}, False, "challenge_mismatch", id="wrong-challenge"),
    pytest.param({"packages": (("com.example.evil", 1),)}, {}, False, "package_mismatch", id="wrong-package"),
    pytest.param({"signing_cert_digests": (b"\x01" * 32,)}, {}, False, "signing_certificate_mismatch",
                 id="wrong-signer"),
    pytest.param({"root": FOREIGN_ROOT, "intermediate": g.make_ca("foreign-int", FOREIGN_ROOT)}, {}, False,
                 "chain_untrusted", id="foreign-root"),
    pytest.param({}, {}, True, "chain_untrusted", id="tampered-chain"),
    pytest.param({"verified_boot_state": "Failed"}, {}, False, "boot_state_unverified", id="failed-boot"),
    pytest.param({}, {"request_hash": "not-this-request"}, False, "request_hash_mismatch", id="wrong-request-hash"),
    pytest.param({}, {"package_name": "com.example.evil"}, False, "package_mismatch", id="verdict-package"),
    pytest.param({}, {"app_verdict": "UNRECOGNIZED_VERSION", "cert_digests": (b"\x02" * 32,)}, False,
                 "signing_certificate_mismatch", id="verdict-foreign-signer"),
    pytest.param({}, {"testing": True}, False, "testing_response", id="testing-response"),
    pytest.param({}, {"timestamp_ms": "1000"}, False, "verdict_stale", id="stale-verdict"),
]


@pytest.mark.parametrize(("leaf", "verdict", "tamper", "reason"), FORGERIES)
def test_forged_evidence_is_refused_even_when_the_policy_allows_every_fact(
    phone: HealthApp, mobile_client: Any, leaf: dict[str, Any], verdict: dict[str, Any], tamper: bool, reason: str
) -> None:
    allow_everything(mobile_client.client)
    phone.leaf = {**fresh_patch(), **ROOTED, **SOFTWARE, **leaf}
    phone.device.verdict_forge = {"device_verdicts": None, "licensing": "UNLICENSED", **verdict}
    phone.device.tamper = tamper
    refused(phone.login(), reason)
    nothing_stored()


def test_the_same_rooted_evidence_passes_when_genuine(phone: HealthApp, mobile_client: Any) -> None:
    """The control of the forgeries above: only the forged part made them fail."""
    allow_everything(mobile_client.client)
    phone.leaf = {**fresh_patch(), **ROOTED, **SOFTWARE}
    phone.device.verdict_forge = {"device_verdicts": None, "licensing": "UNLICENSED"}
    response = phone.login()
    assert response.status_code == 200, response.content
    assert DeviceHealth.objects.get().outcome == HealthOutcome.ALLOW


def test_a_forged_refresh_signature_is_refused_when_the_policy_allows_everything(
    phone: HealthApp, mobile_client: Any, google: g.GoogleStandIn
) -> None:
    allow_everything(mobile_client.client)
    phone.leaf = {**fresh_patch(), **ROOTED}
    assert phone.login().status_code == 200
    phone.device = Phone(google=google)  # another key: the stolen refresh token on another phone
    refused(phone.refresh(), "signature_invalid")


# ------------------------------------------------------------------ the hot path


def test_what_the_verifiers_refuse_costs_no_query_once_the_rules_are_cached(
    phone: HealthApp, android_app: Any, mobile_client: Any, django_assert_num_queries: Any
) -> None:
    from attestation.flows.android_devices import integrity_policy
    from attestation.grading import refusals_for

    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, HealthOutcome.REDUCE))
    assert phone.login().status_code == 200  # (creates the signing keys: a configuration change)
    assert phone.refresh().status_code == 200  # its verifier read the client's rules into this process's copy
    app = type(android_app).objects.select_related("client").get(pk=android_app.pk)
    with django_assert_num_queries(0):
        assert refusals_for(app).unverified_boot is False
        assert integrity_policy(app).min_level == "device"
