"""Issue 17 §1, an attacker's review of graded trust: a rooted / unlocked phone with a genuine
app that replays, races and crafts requests, and a careless admin.

* a reduction decided for a device follows every token minted for it: a relying service's
  token exchange (RFC 8693) is judged by the rules of the client the device enrolled with,
  not by the exchanging service's, and keeps the reduction (claim, scopes, lifetime);
* a policy change reaches an enrolled device at its next refresh (reduce -> step-up, allow
  -> deny), on the cached rules of this process too;
* choosing an outcome for one device-recognition level never relaxes the default of a level
  the choice does not cover (``--on-integrity-below basic=reduce`` alone);
* the verifier's refusals and the token policy agree on every conflicting rule set;
* inconsistent evidence (a hardware attestation of a software KeyMint, a locked bootloader
  with a basic-only verdict) is graded by its weakest part.

Each refusal asserts the error and that nothing changed.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from attestation.grading import Refusals, refusals_for
from attestation.models import Device, Platform, RegisteredApp
from clients.flows.registration import RegisteredClient, register_client
from core import jwt_tokens
from core.models import SecurityEvent
from device_health import choices
from device_health.evaluate import COMPLIANCE_EVENT
from device_health.models import DeviceHealth, HealthOutcome, HealthPolicy, HealthRule
from idp.oauth.grants.token_exchange import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE
from idp.tests.conftest import MOBILE_CLIENT_ID, browser, form_post, mobile_client, service_client, user  # noqa: F401
from sessions.models import AccessToken, DeviceSession, RefreshToken
from sessions.tests.test_unattested_devices import ios_app, old_iphone  # noqa: F401

from .test_graded_trust import ROOTED, SOFTWARE, G, choose, nothing_stored, phone, refused  # noqa: F401
from .test_health_token_endpoint import FULL, HealthApp, access_claims, android_app, fresh_patch  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_test_roots")]
ORDERS = "https://orders.example.com"
REDUCE, DENY, STEP_UP, ALLOW = HealthOutcome.REDUCE, HealthOutcome.DENY, HealthOutcome.STEP_UP, HealthOutcome.ALLOW


def counts() -> tuple[int, ...]:
    return (Device.objects.count(), DeviceSession.objects.count(), AccessToken.objects.count(),
            RefreshToken.objects.count())


def snapshot() -> tuple[str, str, str | None]:
    health = DeviceHealth.objects.get()
    return health.outcome, health.deciding_rule, health.allowed_scopes


# ------------------------------------------------------------------ token exchange (RFC 8693)


@pytest.fixture
def backend(db: Any) -> RegisteredClient:
    """The app's backend: it serves the app's tokens and exchanges them for the orders API."""
    return register_client(
        name="Backend", public=False, redirect_uris=[], grant_types=["client_credentials", TOKEN_EXCHANGE],
        served_resources=[MOBILE_CLIENT_ID], token_exchange_audiences=[ORDERS], client_id="backend",
    )


def exchange(backend: RegisteredClient, subject: str) -> Any:
    raw = f"{backend.client.client_id}:{backend.secret}".encode()
    return form_post(HttpClient(), reverse("token"), {
        "grant_type": TOKEN_EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": ORDERS}, HTTP_AUTHORIZATION=f"Basic {base64.b64encode(raw).decode()}")


def rooted_and_reduced(phone: HealthApp, mobile_client: Any) -> Any:
    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, REDUCE), (G.BOOTLOADER_UNLOCKED, REDUCE))
    phone.leaf = {**fresh_patch(), **ROOTED}
    response = phone.login()
    assert response.status_code == 200, response.content
    assert access_claims(response)["device_health"] == "reduced"
    return response


@pytest.mark.parametrize("backend_policy", ["none", "allow-everything"])
def test_an_exchanged_token_of_a_reduced_device_stays_reduced(
    phone: HealthApp, mobile_client: Any, backend: RegisteredClient, backend_policy: str
) -> None:
    """The exchanging service's own health policy (none: the strict defaults; or one that
    allows every fact) is not the device's: the device is judged by the rules of the client it
    enrolled with. Before the fix, the defaults refused the exchange *and* stored a `deny`
    snapshot for the device (so the app's own tokens were then refused at userinfo), and a
    lenient service policy minted a full-lifetime token without the reduction and stored
    `allow`."""
    if backend_policy == "allow-everything":
        choose(backend.client, *[(fact, ALLOW) for fact in choices.RULE_NAMES], levels={"strong": ALLOW})
    subject = rooted_and_reduced(phone, mobile_client).json()["access_token"]
    before, events = snapshot(), SecurityEvent.objects.filter(event_type=COMPLIANCE_EVENT).count()
    response = exchange(backend, subject)
    assert response.status_code == 200, response.content
    claims = jwt_tokens.verify(response.json()["access_token"], typ="at+jwt", audience=ORDERS)
    assert claims["device_health"] == "reduced" and claims["act"] == {"sub": "backend"}
    assert claims["scope"] == "openid profile" and claims["exp"] - claims["iat"] <= 120
    assert snapshot() == before == (REDUCE, "rooted-boot", "openid profile")
    assert SecurityEvent.objects.filter(event_type=COMPLIANCE_EVENT).count() == events  # no flip, no flap


def test_an_exchange_for_a_device_whose_client_now_denies_it_is_refused(
    phone: HealthApp, mobile_client: Any, backend: RegisteredClient
) -> None:
    """The app's client tightened reduce -> deny: the still-valid access token cannot be
    laundered through the backend's exchange into a fresh downstream token."""
    subject = rooted_and_reduced(phone, mobile_client).json()["access_token"]
    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, DENY))
    tokens = AccessToken.objects.count()
    response = exchange(backend, subject)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant", response.content
    assert "rule rooted-boot" in response.json()["error_description"]
    assert AccessToken.objects.count() == tokens
    assert snapshot()[0] == DENY


# ------------------------------------------------------------------ a careless admin's rules


def test_choosing_a_lower_recognition_level_does_not_relax_the_default(phone: HealthApp, mobile_client: Any,
                                                                       android_app: RegisteredApp) -> None:
    """``--on-integrity-below basic=reduce`` says what a device without basic integrity earns;
    it says nothing about one with basic only, which the default (below ``device``: deny) keeps
    refusing. Before the fix any own integrity rule replaced the default: the basic-only device
    got full access."""
    choose(mobile_client.client, levels={"basic": REDUCE})
    assert refusals_for(android_app).min_integrity == "device"
    phone.device.verdict_forge = {"device_verdicts": ("MEETS_BASIC_INTEGRITY",)}
    refused(phone.login(), "integrity_verdict_insufficient")
    nothing_stored()


def test_choosing_the_default_level_or_a_stricter_one_replaces_it(phone: HealthApp, mobile_client: Any,
                                                                  android_app: RegisteredApp) -> None:
    """The control: a choice that covers the default's devices (below ``strong``) is the
    client's, as documented; the basic-only device is reduced, not refused."""
    choose(mobile_client.client, levels={"strong": REDUCE})
    assert refusals_for(android_app).min_integrity is None
    phone.device.verdict_forge = {"device_verdicts": ("MEETS_BASIC_INTEGRITY",)}
    response = phone.login()
    assert response.status_code == 200 and access_claims(response)["device_health"] == "reduced"


@pytest.mark.parametrize("outcome", [ALLOW, DENY])
def test_an_ios_rule_named_like_an_android_default_does_not_lift_it(
    phone: HealthApp, mobile_client: Any, android_app: RegisteredApp, outcome: str
) -> None:
    """A rule for iOS on an Android-only fact, named ``rooted-boot`` like the default: before the
    fix the name alone removed the Android default, and a rooted Android phone got full access."""
    policy = HealthPolicy.objects.create(client=mobile_client.client)
    HealthRule.objects.create(policy=policy, name="rooted-boot", platform=Platform.IOS,
                              condition="boot_not_verified", outcome=outcome)
    assert refusals_for(android_app).unverified_boot
    phone.leaf = {**fresh_patch(), "verified_boot_state": "Unverified"}
    refused(phone.login(), "boot_state_unverified")
    nothing_stored()


def test_a_disabled_choice_gives_the_fact_back_to_its_default(phone: HealthApp, mobile_client: Any,
                                                              android_app: RegisteredApp) -> None:
    choose(mobile_client.client, (G.BOOTLOADER_UNLOCKED, ALLOW))
    assert not refusals_for(android_app).unlocked_bootloader
    HealthRule.objects.filter(name="unlocked-bootloader").update(enabled=False)  # reaches the copies too
    assert refusals_for(android_app).unlocked_bootloader
    phone.leaf = {**fresh_patch(), "device_locked": False}
    refused(phone.login(), "bootloader_unlocked")
    nothing_stored()


# ------------------------------------------------------------------ the verifier and the token policy agree

GOOD = {"key_security_level": "tee", "verified_boot_state": "Verified", "bootloader_locked": True,
        "device_recognition": "strong", "genuine_app": True, "app_licensed": True}
BAD: list[tuple[str, Any]] = [
    ("key_security_level", "software"), ("verified_boot_state", "Unverified"), ("verified_boot_state", "SelfSigned"),
    ("bootloader_locked", False), ("device_recognition", "device"), ("device_recognition", "basic"),
    ("device_recognition", "virtual"), ("device_recognition", "none"), ("genuine_app", False),
    ("app_licensed", False),
]
LEVEL_RANK = {"none": 0, "virtual": 0, "basic": 1, "device": 2, "strong": 3}


def verifier_refuses(refusals: Refusals, name: str, value: Any) -> bool:
    """What ``attestation/android`` does with ``refusals`` for one bad fact."""
    if name == "device_recognition":
        return refusals.min_integrity is not None and LEVEL_RANK[value] < LEVEL_RANK[refusals.min_integrity]
    return {"key_security_level": refusals.software_key, "verified_boot_state": refusals.unverified_boot,
            "bootloader_locked": refusals.unlocked_bootloader, "genuine_app": refusals.unrecognized_app,
            "app_licensed": refusals.unlicensed}[name]


def random_rules(rng: Any, policy: HealthPolicy) -> None:
    names = ["rooted-boot", "integrity-failed", "software-key", "unlocked-bootloader"]
    for i in range(rng.randint(0, 5)):
        condition = rng.choice([*G, "patch_older_than"])
        name = rng.choice(names + [f"r{i}"])
        names = [n for n in names if n != name]
        HealthRule.objects.create(
            policy=policy, order=i, name=name,
            enabled=rng.random() > 0.2, platform=rng.choice(["", "android", "ios"]), condition=condition,
            parameter=rng.choice(["", "basic", "device", "strong", "none", "DEVICE"])
            if condition == G.INTEGRITY_BELOW else "",
            outcome=rng.choice(list(HealthOutcome)))
    HealthRule.objects.filter(policy=policy, condition="patch_older_than").update(parameter="1")


def test_the_verifier_refuses_exactly_what_the_rules_deny(mobile_client: Any, android_app: RegisteredApp) -> None:
    """For random rule sets (conflicting outcomes on one fact, any-platform and platform rules,
    iOS rules on Android facts, disabled rules, default names, odd integrity parameters, with
    and without the other defaults) and every bad value of every graded fact: the verifier
    refuses it if and only if the token policy would deny it. Neither lets through what the
    other refuses."""
    import random

    from django.utils import timezone

    from device_health.facts import Fact, HealthFacts
    from device_health.rules import decide, rules_for_client

    rng, now = random.Random(17), timezone.now()
    for levels in ("device", "basic", "strong"):
        android_app.min_integrity_level = levels
        android_app.allow_software_keys = rng.random() > 0.5
        android_app.save()
        for _ in range(60):
            HealthPolicy.objects.filter(client=mobile_client.client).delete()
            if rng.random() > 0.1:
                policy = HealthPolicy.objects.create(client=mobile_client.client,
                                                     include_default_rules=rng.random() > 0.5)
                random_rules(rng, policy)
            app = RegisteredApp.objects.select_related("client").get(pk=android_app.pk)
            refusals, rules = refusals_for(app), rules_for_client(app.client)
            for name, value in BAD:
                facts = HealthFacts({k: Fact(v, "test", "hardware_attested") for k, v in {**GOOD, name: value}.items()})
                denied = decide(rules, facts, "android", now).outcome == DENY
                assert verifier_refuses(refusals, name, value) == denied, (name, value, rules, refusals)


def test_an_integrity_parameter_is_read_alike_by_the_verifier_and_the_rule(
    mobile_client: Any, android_app: RegisteredApp
) -> None:
    """A rule written outside the admin (``HealthRule.clean`` refuses it there): ``deny below
    none`` never fires, so the verifier must not read it as ``basic`` and refuse a device the
    token policy allows (here by the client's ``device=allow``)."""
    policy = HealthPolicy.objects.create(client=mobile_client.client)
    HealthRule.objects.create(policy=policy, order=0, name="no-integrity", condition=G.INTEGRITY_BELOW,
                              parameter="none", outcome=DENY)
    HealthRule.objects.create(policy=policy, order=1, name="weak", condition=G.INTEGRITY_BELOW,
                              parameter="device", outcome=ALLOW)
    assert refusals_for(android_app).min_integrity is None


# ------------------------------------------------------------------ every token minted for a reduced device


def test_the_id_token_of_a_reduced_device_carries_only_the_reduced_scopes_claims(
    phone: HealthApp, mobile_client: Any, user: Any
) -> None:
    """The ID token put the claims of the session's granted scope (``email``) beside an access
    token reduced to ``openid profile``, at the code exchange and at every refresh: the
    reduction leaked what it withholds at userinfo."""
    assert user.email
    response = rooted_and_reduced(phone, mobile_client)
    for issued in (response, phone.refresh()):
        assert issued.status_code == 200, issued.content
        assert issued.json()["scope"] == "openid profile"
        id_token = _claims(issued.json()["id_token"])
        assert "email" not in id_token and "email_verified" not in id_token
        assert id_token["preferred_username"] == user.get_username()


def test_a_reduction_without_openid_issues_no_id_token(phone: HealthApp, mobile_client: Any) -> None:
    choices.choose(mobile_client.client, [choices.FactChoice(G.BOOTLOADER_UNLOCKED, REDUCE)],
                   reduced_scopes="profile")
    phone.leaf = {**fresh_patch(), "device_locked": False}
    for issued in (phone.login(), phone.refresh()):
        assert issued.status_code == 200, issued.content
        assert issued.json()["scope"] == "profile" and "id_token" not in issued.json()


def _claims(token: str) -> dict[str, Any]:
    import json

    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# ------------------------------------------------------------------ a policy change reaches enrolled devices

TIGHTENINGS = [
    pytest.param(REDUCE, STEP_UP, "Step-up required", id="reduce-to-step-up"),
    pytest.param(ALLOW, DENY, "rule rooted-boot", id="allow-to-deny"),
    pytest.param(REDUCE, DENY, "rule rooted-boot", id="reduce-to-deny"),
]


@pytest.mark.parametrize("one_statement", [True, False], ids=["one-statement", "transactional"])
@pytest.mark.parametrize(("first", "then", "said"), TIGHTENINGS)
def test_a_tightened_choice_reaches_the_enrolled_device_at_its_next_refresh(
    settings: Any, phone: HealthApp, mobile_client: Any, one_statement: bool, first: HealthOutcome,
    then: HealthOutcome, said: str
) -> None:
    """On both rotation paths (``sessions/flows/rotation_statement.py`` and the transactional
    one): the stored Key Attestation facts meet the new rule; nothing is issued or rotated."""
    settings.SESSIONS_ROTATE_IN_ONE_STATEMENT = one_statement
    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, first))
    phone.leaf = {**fresh_patch(), "verified_boot_state": "Unverified"}
    assert phone.login().status_code == 200
    assert phone.refresh().status_code == 200  # the refresh path has run (and cached the rules) once
    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, then))
    before, presented = counts(), phone.refresh_token
    response = phone.refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant", response.content
    assert said in response.json()["error_description"]
    assert counts() == before
    assert RefreshToken.objects.get(token_hash=_hash(presented)).rotated_at is None
    assert DeviceHealth.objects.get().outcome == then


def _hash(raw: str) -> bytes:
    from core.crypto import token_digest

    return token_digest(raw)


def reuse_verdicts(phone: HealthApp) -> None:
    """The app sends no verdict at its refreshes (the client's max age lets the last one stand)."""
    device = phone.device
    plain = type(device).refresh_params
    device.refresh_params = lambda binding, **kw: plain(device, binding, integrity=None)


def test_a_tightened_integrity_choice_meets_a_reused_verdict(
    phone: HealthApp, mobile_client: Any, android_app: RegisteredApp
) -> None:
    """``play_integrity_max_age_minutes`` lets the stored verdict stand at a refresh: the
    verifier sees no verdict to refuse, so the token policy must refuse the stored one."""
    android_app.play_integrity_max_age_minutes = 10
    android_app.save()
    choose(mobile_client.client, levels={"device": REDUCE})
    phone.device.verdict_forge = {"device_verdicts": ("MEETS_BASIC_INTEGRITY",)}
    assert access_claims(phone.login())["device_health"] == "reduced"
    reuse_verdicts(phone)
    kept = phone.refresh()
    assert kept.status_code == 200 and access_claims(kept)["device_health"] == "reduced"  # no escape by reuse
    choose(mobile_client.client, levels={"device": DENY})
    before = counts()
    response = phone.refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant", response.content
    assert "integrity-below-device" in response.json()["error_description"]
    assert counts() == before and DeviceHealth.objects.get().outcome == DENY


def test_a_tightened_choice_reaches_a_process_holding_the_old_rules(
    phone: HealthApp, mobile_client: Any, android_app: RegisteredApp, django_capture_on_commit_callbacks: Any
) -> None:
    """Another web worker holds the client's rules (and what its verifiers refuse) in its
    config cache; the admin's change is published on commit and that copy is not served."""
    from core import config_cache

    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, REDUCE))
    phone.leaf = {**fresh_patch(), "verified_boot_state": "Unverified"}
    assert phone.login().status_code == 200 and phone.refresh().status_code == 200
    assert not refusals_for(android_app).unverified_boot
    other_worker = dict(config_cache._copies)
    assert other_worker and config_cache._shared_generation() is not None
    with django_capture_on_commit_callbacks(execute=True):
        choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, DENY))
    config_cache._copies.update(other_worker)  # what the other worker still holds
    assert refusals_for(android_app).unverified_boot
    before = counts()
    response = phone.refresh()
    assert response.status_code == 400 and "rule rooted-boot" in response.json()["error_description"]
    assert counts() == before


# ------------------------------------------------------------------ inconsistent evidence


@pytest.fixture
def root_of_trust_in_software_list(monkeypatch: Any) -> None:
    """A TEE attestation whose rootOfTrust is in ``softwareEnforced`` (what the OS, not the TEE,
    vouches for) and absent from ``teeEnforced``: the leaf as a rooted OS would like it."""
    from attestation.testing import google_pki

    plain = google_pki._auth_list

    def moved(values: dict[str, Any]) -> Any:
        if "creation_date_time" in values:  # the software list
            values = {**values, "root_of_trust": {"verified_boot_key": b"\x01" * 32, "device_locked": True,
                                                  "verified_boot_state": "Verified", "verified_boot_hash": b"\x02" * 32}}
        else:
            values = {k: v for k, v in values.items() if k != "root_of_trust"}
        return plain(values)

    monkeypatch.setattr(google_pki, "_auth_list", moved)


@pytest.mark.usefixtures("root_of_trust_in_software_list")
def test_a_software_listed_root_of_trust_does_not_vouch_for_a_tee_key(phone: HealthApp, mobile_client: Any) -> None:
    """The verifier judges the TEE's rootOfTrust only (none here: boot unverified, unlocked);
    the facts stored for the policy must be the same ones. Before the fix they were read from
    the software list (``Verified``, locked, "hardware_attested"), so a client reducing rooted
    devices gave this one full access."""
    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, REDUCE), (G.BOOTLOADER_UNLOCKED, REDUCE))
    response = phone.login()
    assert response.status_code == 200, response.content
    assert access_claims(response)["device_health"] == "reduced"
    facts = DeviceHealth.objects.get().facts
    assert facts["verified_boot_state"]["value"] == "Missing" and facts["bootloader_locked"]["value"] is False
    assert Device.objects.get().verdict["key_attestation"]["root_of_trust"] is None


@pytest.mark.usefixtures("root_of_trust_in_software_list")
def test_a_software_listed_root_of_trust_is_refused_by_default(phone: HealthApp) -> None:
    refused(phone.login(), "boot_state_unverified")
    nothing_stored()


def test_a_hardware_attestation_of_a_software_keymint_is_a_software_key(phone: HealthApp, mobile_client: Any) -> None:
    """attestationSecurityLevel TEE but keyMintSecurityLevel Software: the weaker counts."""
    phone.leaf = {**fresh_patch(), "keymint_security_level": "Software"}
    refused(phone.login(), "security_level_insufficient")
    nothing_stored()
    choose(mobile_client.client, (G.SOFTWARE_KEY, REDUCE))
    response = phone.login()
    assert response.status_code == 200 and access_claims(response)["device_health"] == "reduced"
    facts = DeviceHealth.objects.get().facts
    assert facts["key_security_level"]["value"] == "software" and facts["os_patch_level"]["trust"] == "software_attested"


def test_a_locked_bootloader_with_a_basic_only_verdict_is_graded_by_the_verdict(
    phone: HealthApp, mobile_client: Any
) -> None:
    """Key Attestation (Verified, locked) and Play Integrity (basic only) disagree: each fact is
    graded on its own and the strictest outcome wins; by default the verdict refuses."""
    phone.device.verdict_forge = {"device_verdicts": ("MEETS_BASIC_INTEGRITY",)}
    refused(phone.login(), "integrity_verdict_insufficient")
    nothing_stored()
    choose(mobile_client.client, levels={"device": REDUCE})
    response = phone.login()
    assert response.status_code == 200 and access_claims(response)["device_health"] == "reduced"
    assert DeviceHealth.objects.get().deciding_rule == "integrity-below-device"


# ------------------------------------------------------------------ every grant that can mint a token


def test_the_device_grant_mints_nothing_for_a_client_that_requires_attestation(
    browser: Any, mobile_client: Any, android_app: RegisteredApp
) -> None:
    """A careless admin adds the device authorization grant (RFC 8628) to the attested app's
    client: a device grant binds no device, so it must not become a way around attestation
    (and the health policy that grades it). Before the fix the poll returned full tokens."""
    from idp.oauth.grants.device_code import DEVICE_CODE

    client = mobile_client.client
    client.grant_types = [*client.grant_types, DEVICE_CODE]
    client.save()
    android_app.require_attestation = False  # the device code is started before attestation is required
    android_app.save()
    started = form_post(HttpClient(), reverse("device-authorization"),
                        {"client_id": client.client_id, "scope": "openid profile email"})
    assert started.status_code == 200, started.content
    assert browser.post(reverse("device"), {"user_code": started.json()["user_code"], "decision": "approve"}
                        ).status_code in (200, 302)
    android_app.require_attestation = True
    android_app.save()
    polled = form_post(HttpClient(), reverse("token"), {
        "grant_type": DEVICE_CODE, "device_code": started.json()["device_code"], "client_id": client.client_id})
    assert polled.status_code == 400 and polled.json()["error"] == "unauthorized_client", polled.content
    again = form_post(HttpClient(), reverse("device-authorization"), {"client_id": client.client_id})
    assert again.status_code == 400 and again.json()["error"] == "unauthorized_client", again.content
    assert AccessToken.objects.count() == 0 and RefreshToken.objects.count() == 0
    assert DeviceSession.objects.count() == 0
    assert SecurityEvent.objects.filter(event_type="oauth.device_authorization", reason="attestation_required",
                                        outcome="denied").count() == 2


def test_the_same_key_enrolled_again_with_worse_facts_grades_every_session_of_the_device(
    phone: HealthApp, mobile_client: Any
) -> None:
    """Genuine KeyMint attests a key once (the challenge is fixed at generation), so this takes a
    simulator; still: a second enrollment of the same key that reports a rooted boot replaces
    the device's facts (one Device row), is recorded, and the first session's next refresh is
    reduced too: the device's sessions share its facts."""
    choose(mobile_client.client, (G.BOOT_NOT_VERIFIED, REDUCE))
    first = HealthApp(phone.browser, phone.client_id, phone.device)
    assert first.login().status_code == 200 and snapshot()[0] == ALLOW
    phone.leaf = {**fresh_patch(), "verified_boot_state": "Unverified"}
    assert access_claims(phone.login())["device_health"] == "reduced"
    assert Device.objects.count() == 1 and DeviceSession.objects.count() == 2
    assert SecurityEvent.objects.filter(event_type=COMPLIANCE_EVENT, details__new_outcome=REDUCE).exists()
    assert access_claims(first.refresh())["device_health"] == "reduced"


def test_the_same_key_enrolled_again_with_denied_facts_changes_nothing(phone: HealthApp) -> None:
    first = HealthApp(phone.browser, phone.client_id, phone.device)
    assert first.login().status_code == 200
    before, facts = counts(), DeviceHealth.objects.get().facts
    phone.leaf = {**fresh_patch(), "verified_boot_state": "Unverified"}
    refused(phone.login(), "boot_state_unverified")
    assert counts() == before and DeviceHealth.objects.get().facts == facts
    assert Device.objects.get().verdict["key_attestation"]["root_of_trust"]["verified_boot_state"] == "Verified"


# ------------------------------------------------------------------ the fallback's default (issue 17 §2) under a careless policy


@pytest.mark.parametrize("own", [
    pytest.param({}, id="no-own-rule"),
    pytest.param({"name": "ios-only", "platform": "ios", "outcome": "allow"}, id="an-ios-only-allow"),
])
def test_turning_the_other_defaults_off_does_not_give_unattested_devices_full_access(
    old_iphone: Any, mobile_client: Any, own: dict[str, str]
) -> None:
    """"Include default rules" off is not a choice for unattested devices: their default
    (reduce) replaces the refusal they met before the fallback, as the graded defaults do; only
    a rule on ``unattested`` for every platform replaces it. Before the fix such a policy gave an
    unattested device the full scope for the usual lifetime."""
    policy = HealthPolicy.objects.create(client=mobile_client.client, include_default_rules=False)
    HealthRule.objects.create(policy=policy, name="no-debugger", condition="debugger_attached", outcome=DENY)
    if own:
        HealthRule.objects.create(policy=policy, condition="unattested", **own)
    response = old_iphone.login()
    assert response.status_code == 200, response.content
    claims = access_claims(response)
    assert claims["device_attested"] is False and claims["device_health"] == "reduced"
    assert claims["scope"] == "openid profile" and claims["exp"] - claims["iat"] <= 120
