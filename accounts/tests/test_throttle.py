"""Throttling that cannot be turned against users (issue 12, docs/operations.md "Throttling").

Each attack of the issue, forged from the addresses an attacker would use, then the user
signing in from their own device or network as if nothing happened."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import known_devices, throttle
from accounts.app_settings import app_settings
from accounts.tests.conftest import (
    PASSWORD,
    code_for,
    confirmed_totp,
    load_vector,
    login_password,
    session_auth,
    signed_in,
)
from accounts.tests.test_webauthn_vectors import RSA, _b, _configure, _rsa_passkey, _seed_challenge
from core.models import SecurityEvent
from core.outage_testing import database_down

pytestmark = pytest.mark.django_db

ATTACKER = "198.51.100.7"
HOME = "203.0.113.20"
HOME_LAPTOP = "203.0.113.99"  # the same /24: the user's usual network, another device
PROXY = "10.0.0.5"


def at(address: str, **headers: Any) -> Client:
    return Client(REMOTE_ADDR=address, **headers)


def device_of(user: Any, address: str = HOME) -> Client:
    """A browser the user signed in on once (and signed out of): it holds the device cookie."""
    browser = at(address)
    assert login_password(browser, user.username).status_code == 302
    assert app_settings.KNOWN_DEVICE_COOKIE in browser.cookies
    browser.post(reverse("accounts:logout"))
    assert session_auth(browser) is None
    return browser


def signs_in(browser: Client, username: str = "alice", password: str = PASSWORD) -> bool:
    response = login_password(browser, username, password)
    return response.status_code == 302 and session_auth(browser) is not None


def denied(**filters: Any) -> list[SecurityEvent]:
    return list(SecurityEvent.objects.filter(outcome="denied", reason="throttled", **filters).order_by("pk"))


def test_five_wrong_passwords_from_anywhere_lock_no_account(user: Any, frozen: Any) -> None:
    """Reproduction: 5 wrong passwords from anywhere locked any account's password sign-in."""
    phone = device_of(user)
    attacker = at(ATTACKER)
    for _ in range(5):
        assert login_password(attacker, password="wrong").status_code == 400
    refused = login_password(attacker)  # the right password, but the attacker's source must wait
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    assert session_auth(attacker) is None
    assert not SecurityEvent.objects.filter(event_type="login.password", outcome="success", ip_address=ATTACKER)

    assert signs_in(phone)  # the user's own device
    assert signs_in(at(HOME_LAPTOP))  # the user's usual network, another device
    assert signs_in(at("192.0.2.44"))  # even a new place: this account's unfamiliar budget is not spent
    [event] = denied(event_type="login.password")
    assert event.ip_address == ATTACKER and event.details["bucket"] == "account_source"
    assert event.details["retry_after"] == 1 and event.details["basis"] == "unfamiliar"


def test_no_number_of_sources_locks_the_user_out(user: Any, frozen: Any) -> None:
    """A botnet: one wrong password from each of 40 addresses."""
    phone = device_of(user)
    for n in range(40):
        login_password(at(f"198.51.100.{n + 10}"), password="wrong")
    stranger = login_password(at("192.0.2.200"))
    assert stranger.status_code == 429  # unfamiliar sources together are slowed down...
    assert denied(event_type="login.password")[-1].details["bucket"] == "account_unfamiliar"
    assert signs_in(phone)  # ...but never the user's device
    assert signs_in(at(HOME_LAPTOP))  # or network


def test_a_shared_address_never_throttles_everyone(make_user: Any, frozen: Any, settings: Any) -> None:
    """Reproduction: behind a proxy every request has its address, and 20 failed logins by
    anyone locked out every user for 15 minutes."""
    alice, bob = make_user("alice"), make_user("bob")
    device_of(alice, PROXY)
    device_of(bob, PROXY)
    attacker = at(PROXY)
    for n in range(25):
        login_password(attacker, username=f"user{n}", password="wrong")
    assert signs_in(at(PROXY), "alice") and signs_in(at(PROXY), "bob")  # their usual network, no cookie
    newcomer = login_password(at(PROXY), username="carol", password="wrong")
    assert newcomer.status_code == 429 and int(newcomer["Retry-After"]) <= 32  # slowed, for a while

    # With the proxy trusted, everyone is their own source again.
    settings.VIGIL_TRUSTED_PROXIES = [PROXY]
    carol = make_user("carol")
    assert signs_in(at(PROXY, HTTP_X_FORWARDED_FOR="192.0.2.77"), carol.username)
    for n in range(25):
        login_password(at(PROXY, HTTP_X_FORWARDED_FOR=ATTACKER), username=f"user{n}", password="wrong")
    make_user("dave")
    assert signs_in(at(PROXY, HTTP_X_FORWARDED_FOR="192.0.2.78"), "dave")
    assert denied(event_type="login.password", ip_address=ATTACKER)


def test_successes_count_in_no_attack_wide_bucket(make_user: Any, user: Any, frozen: Any, settings: Any) -> None:
    """Only failures count in (source, every account) and (account, every unfamiliar source):
    the first sign-ins of many users behind one address (an office NAT, an untrusted proxy)
    never delay the next newcomer, nor does a user signing in from many new networks."""
    settings.ACCOUNTS_LOGIN_SOURCE_FREE_FAILURES = 3
    settings.ACCOUNTS_LOGIN_UNFAMILIAR_FREE_FAILURES = 3
    for n in range(6):
        assert signs_in(at(PROXY), make_user(f"newcomer{n}").username)
        assert signs_in(at(f"192.0.{n}.1"))  # alice, from a new network each time
    assert not denied()
    for n in range(3):  # the buckets still count failures
        assert login_password(at(PROXY), username=f"user{n}", password="wrong").status_code == 400
    late = make_user("latecomer")  # PROXY is not (yet) their usual network
    assert login_password(at(PROXY), username=late.username).status_code == 429
    assert denied()[-1].details["bucket"] == "source"


def test_usual_networks_are_bounded_and_expire(user: Any, frozen: Any) -> None:
    """An account keeps only its latest ``MAX_NETWORKS`` usual networks, each for
    ``KNOWN_NETWORK_DAYS`` after its latest full sign-in."""
    for n in range(known_devices.MAX_NETWORKS + 1):
        assert signs_in(at(f"192.0.{n}.1"))
        frozen.shift(1)
    login_password(at("192.0.0.2"), password="wrong")  # the oldest: no longer usual
    login_password(at("192.0.1.2"), password="wrong")
    frozen.shift(app_settings.KNOWN_NETWORK_DAYS * 86400)
    login_password(at("192.0.10.2"), password="wrong")  # the newest, a moment past its days
    bases = [e.details["basis"] for e in SecurityEvent.objects.filter(outcome="failure").order_by("pk")]
    assert bases == ["unfamiliar", "usual_network", "unfamiliar"]


def test_an_outage_during_the_check_counts_no_failure(user: Any, frozen: Any) -> None:
    """The database fails while the password is checked: the attempt answers 503 and was never
    judged, so retries through the outage leave no delay behind."""
    browser = at(HOME)
    with database_down(lambda sql: "accounts_user" in sql):
        for _ in range(app_settings.LOGIN_FREE_FAILURES + 2):
            assert login_password(browser).status_code == 503
    assert signs_in(browser)
    assert not denied()


def test_failures_from_an_address_never_block_passkey_sign_in(user: Any, make_user: Any, settings: Any) -> None:
    """Reproduction: the per-address lock also blocked passkey sign-in (so behind a proxy nobody
    could sign in at all)."""
    vector = load_vector(RSA)
    _configure(settings, vector["params"])
    _rsa_passkey(user, vector)
    browser = at(PROXY)
    for n in range(40):
        login_password(browser, username=f"user{n % 3}", password="wrong")
    for _ in range(10):
        bad = browser.post(reverse("accounts:passkey_auth_verify"), json.dumps({"purpose": "login", "credential": {}}),
                           content_type="application/json")
        assert bad.status_code == 400
    _seed_challenge(browser, "login", _b(vector["params"]["expected_challenge"]))
    response = browser.post(reverse("accounts:passkey_auth_verify"),
                            json.dumps({"purpose": "login", "credential": vector["credential"]}),
                            content_type="application/json")
    assert response.status_code == 200, response.content
    assert signed_in(browser)["amr"] == ["hwk", "mfa", "user"]
    assert app_settings.KNOWN_DEVICE_COOKIE in response.cookies
    assert not denied(event_type="login.passkey")


def test_delays_grow_and_are_refusals_never_sleeps(user: Any, frozen: Any) -> None:
    attacker = at(ATTACKER)
    failures = SecurityEvent.objects.filter(event_type="login.password", outcome="failure")
    for _ in range(5):
        login_password(attacker, password="wrong")
    assert [e.details["next_attempt_delay"] for e in failures.order_by("pk")] == [0, 0, 0, 0, 1]
    for wait in (1, 2, 4, 8):
        started = time.perf_counter()
        early = login_password(attacker, password="wrong")
        assert time.perf_counter() - started < 1.0  # answered at once, not slept on
        assert early.status_code == 429 and early["Retry-After"] == str(wait)
        frozen.shift(wait - 0.5)
        assert login_password(attacker, password="wrong")["Retry-After"] == "1"
        frozen.shift(0.5)
        assert login_password(attacker, password="wrong").status_code == 400
    last_failure = failures.order_by("pk").last()
    assert last_failure is not None and last_failure.details["next_attempt_delay"] == 16
    frozen.shift(16)
    assert signs_in(attacker)  # the right password once the wait is over
    assert login_password(attacker, password="wrong").status_code == 400  # and the source starts afresh


def test_the_longest_wait_is_capped(user: Any, frozen: Any, settings: Any) -> None:
    settings.ACCOUNTS_LOGIN_MAX_DELAY_SECONDS = 60
    attacker = at(ATTACKER)
    for _ in range(12):
        login_password(attacker, password="wrong")
        frozen.shift(61)
    login_password(attacker, password="wrong")
    assert login_password(attacker, password="wrong")["Retry-After"] == "60"
    frozen.shift(app_settings.LOGIN_FAILURE_RESET_SECONDS + 1)
    assert login_password(attacker, password="wrong").status_code == 400  # forgotten after the reset time


def test_guesses_in_flight_count_before_they_are_judged(frozen: Any) -> None:
    """Parallel guesses cannot all pass the check before the first failure is counted."""
    source = throttle.Source(ATTACKER)
    for _ in range(5):
        throttle.admit(throttle.Scope.PASSWORD, "alice", source)  # none of them answered yet
    with pytest.raises(throttle.Throttled) as refused:
        throttle.admit(throttle.Scope.PASSWORD, "alice", source)
    assert refused.value.retry_after == 1 and refused.value.bucket == throttle.BucketKind.ACCOUNT_SOURCE
    # a refusal is not an attempt: it does not lengthen the wait
    frozen.shift(1)
    throttle.admit(throttle.Scope.PASSWORD, "alice", source)


LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle"}}


@pytest.mark.parametrize("backend", ["configured", "local-memory"])
def test_reservations_and_their_return_on_every_cache_backend(backend: str, settings: Any, frozen: Any) -> None:
    """The configured cache (Redis in CI: one MULTI per reservation) and the one-call-per-step
    path of other backends count alike: reserved, refused, cleared, given back."""
    if backend == "local-memory":
        settings.CACHES = LOCMEM
    source = throttle.Source(ATTACKER)
    admitted = [throttle.admit(throttle.Scope.PASSWORD, "alice", source) for _ in range(5)]
    assert [a.counts for a in admitted] == [[n, n, n] for n in range(1, 6)]
    with pytest.raises(throttle.Throttled):
        throttle.admit(throttle.Scope.PASSWORD, "alice", source)
    throttle.succeeded(admitted[0])  # clears (account, source); gives one back to the other two
    after_success = throttle.admit(throttle.Scope.PASSWORD, "alice", source)
    assert after_success.counts == [1, 5, 5]
    throttle.abandoned(after_success)  # never judged: every reservation given back
    assert throttle.admit(throttle.Scope.PASSWORD, "alice", source).counts == [1, 5, 5]


def test_the_device_cookie_comes_only_with_a_full_sign_in(user: Any, frozen: Any) -> None:
    device = confirmed_totp(user)
    browser = at(HOME)
    first = login_password(browser)
    assert first.url.startswith(reverse("accounts:verify"))
    assert app_settings.KNOWN_DEVICE_COOKIE not in first.cookies  # a password alone mints nothing
    done = browser.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(device)})
    cookie = done.cookies[app_settings.KNOWN_DEVICE_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and int(cookie["max-age"]) == 180 * 86400
    assert user.username not in cookie.value  # accounts are named by a keyed hash


def test_a_password_alone_mints_no_device_while_a_second_factor_must_be_enrolled(make_user: Any, frozen: Any) -> None:
    """A required second factor not yet enrolled: the password opens a session that can only
    enroll one; the device cookie and the usual network come once the factor is proved."""
    user = make_user(require_mfa=True)
    browser = at(HOME)
    first = login_password(browser, user.username)
    assert first.url.startswith(reverse("accounts:mfa_setup")) and signed_in(browser)["amr"] == ["pwd"]
    assert app_settings.KNOWN_DEVICE_COOKIE not in first.cookies
    tag = known_devices.account_tag(user.username)
    assert known_devices._usual_networks(tag, time.time()) == {}
    browser.get(reverse("accounts:totp_enroll"))
    device = TOTPDevice.objects.get(user=user)
    enrolled = browser.post(reverse("accounts:totp_enroll"), {"code": code_for(device)})
    assert enrolled.cookies[app_settings.KNOWN_DEVICE_COOKIE]["httponly"]
    assert known_devices.network(HOME) in known_devices._usual_networks(tag, time.time())
    browser.post(reverse("accounts:logout"))
    source = known_devices.source_for(_request_from(browser, HOME), user.username)
    assert source.basis == throttle.Basis.KNOWN_DEVICE


def test_a_cache_failing_as_the_device_is_remembered_costs_the_enrollment_nothing(make_user: Any, frozen: Any,
                                                                                 monkeypatch: Any) -> None:
    """Remembering the network runs after the factor is confirmed and the session key cycled:
    a cache failing there (and only there) leaves the network unusual, never a 503 that signs
    the user out and hides the recovery codes of a factor that was enrolled."""
    import redis

    user = make_user(require_mfa=True)
    browser = at(HOME)
    login_password(browser, user.username)
    browser.get(reverse("accounts:totp_enroll"))
    device = TOTPDevice.objects.get(user=user)

    def unavailable(*args: Any) -> None:
        raise redis.ConnectionError("injected: the cache went away")

    monkeypatch.setattr(known_devices, "_add_usual_network", unavailable)
    enrolled = browser.post(reverse("accounts:totp_enroll"), {"code": code_for(device)})
    assert enrolled.status_code == 303, enrolled.content[:300]
    assert signed_in(browser)["amr"] == ["mfa", "otp", "pwd"]
    assert StaticToken.objects.filter(device__user=user).exists()  # the recovery codes were made
    assert app_settings.KNOWN_DEVICE_COOKIE in enrolled.cookies
    assert known_devices._usual_networks(known_devices.account_tag(user.username), time.time()) == {}


def _request_from(browser: Client, address: str) -> Any:
    from django.test import RequestFactory

    request = RequestFactory(REMOTE_ADDR=address).get("/")
    request.COOKIES = {k: v.value for k, v in browser.cookies.items()}
    return request


def test_a_forged_device_cookie_is_an_unfamiliar_source(user: Any, frozen: Any) -> None:
    phone = device_of(user)
    entries = signing.loads(phone.cookies[app_settings.KNOWN_DEVICE_COOKIE].value, salt="vigil.accounts.known-device")
    forged = at(ATTACKER)
    forged.cookies[app_settings.KNOWN_DEVICE_COOKIE] = signing.dumps(entries, key="not-the-secret")
    login_password(forged, password="wrong")
    stolen = at(ATTACKER)
    stolen.cookies[app_settings.KNOWN_DEVICE_COOKIE] = phone.cookies[app_settings.KNOWN_DEVICE_COOKIE].value
    login_password(stolen, password="wrong")
    bases = [e.details["basis"] for e in SecurityEvent.objects.filter(outcome="failure").order_by("pk")]
    assert bases == ["unfamiliar", "known_device"]


def test_a_device_cookie_is_bound_to_the_accounts_that_signed_in_on_it(make_user: Any, user: Any,
                                                                       frozen: Any) -> None:
    phone = device_of(user)
    make_user("bob")
    login_password(phone, username="bob", password="wrong")  # alice's phone is a stranger to bob
    login_password(phone, password="wrong")
    bases = [e.details["basis"] for e in SecurityEvent.objects.filter(outcome="failure").order_by("pk")]
    assert bases == ["unfamiliar", "known_device"]


def test_a_stolen_device_cookie_still_guesses_slowly_and_alone(user: Any, frozen: Any) -> None:
    phone = device_of(user)
    laptop = device_of(user, HOME_LAPTOP)
    thief = at(ATTACKER)
    thief.cookies[app_settings.KNOWN_DEVICE_COOKIE] = phone.cookies[app_settings.KNOWN_DEVICE_COOKIE].value
    for _ in range(5):
        login_password(thief, password="wrong")
    assert login_password(thief, password="wrong").status_code == 429
    assert denied()[-1].details["bucket"] == "account_device"
    assert signs_in(laptop)


def test_second_factor_guesses_are_delayed_per_source_not_for_the_user(user: Any, frozen: Any) -> None:
    device = confirmed_totp(user)
    phone = at(HOME)
    login_password(phone)
    assert phone.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(device)}).status_code == 302
    phone.post(reverse("accounts:logout"))

    attacker = at(ATTACKER)  # knows the password
    login_password(attacker)
    bad = "123456" if code_for(device) != "123456" else "654321"
    for _ in range(5):
        assert attacker.post(reverse("accounts:verify"), {"method": "totp", "code": bad}).status_code == 400
    frozen.shift(0.5)
    login_password(attacker)  # a fresh password login does not reset the second-factor delay
    locked = attacker.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(device)})
    assert locked.status_code == 429 and locked["Retry-After"] == "1" and session_auth(attacker) is None
    [event] = denied(event_type="login.second_factor")
    assert event.user == user and event.details["method"] == "totp" and event.ip_address == ATTACKER

    frozen.shift(30)  # a new TOTP step; django-otp's own device-wide back-off is off
    login_password(phone)
    assert phone.post(reverse("accounts:verify"), {"method": "totp", "code": code_for(device)}).status_code == 302
    assert signed_in(phone)["amr"] == ["mfa", "otp", "pwd"]


def test_the_former_lock_out_settings_are_reported(settings: Any) -> None:
    from django.core.checks import run_checks

    assert "accounts.W002" not in [problem.id for problem in run_checks()]
    settings.ACCOUNTS_LOGIN_FAILURES_PER_IP = "20"
    assert "accounts.W002" in [problem.id for problem in run_checks()]


@pytest.mark.redis
def test_a_burst_of_parallel_guesses_gets_only_the_free_ones_on_redis() -> None:
    """30 guesses released together against the shared Redis cache: the reservation (an atomic
    INCR before the check) admits exactly the free ones, the rest are told to wait."""
    from django.conf import settings

    from tests.concurrency import run_concurrently

    assert settings.CACHES["default"]["BACKEND"] == "core.cache.RedisCache"
    source = throttle.Source(ATTACKER)

    def guess(_: int) -> bool:
        try:
            throttle.admit(throttle.Scope.PASSWORD, "alice", source)
        except throttle.Throttled:
            return False
        return True

    admitted = run_concurrently(30, guess)
    assert admitted.count(True) == app_settings.LOGIN_FREE_FAILURES


@pytest.mark.redis
def test_guesses_from_many_sources_racing_one_account_get_only_its_free_ones_on_redis() -> None:
    """30 unfamiliar sources guess the same account at once: each source's own bucket is fresh,
    and the account's shared (account, every unfamiliar source) bucket admits exactly its free
    ones."""
    from tests.concurrency import run_concurrently

    def guess(n: int) -> bool:
        try:
            throttle.admit(throttle.Scope.PASSWORD, "alice", throttle.Source(f"198.51.100.{n + 10}"))
        except throttle.Throttled as refused:
            assert refused.bucket == throttle.BucketKind.ACCOUNT_UNFAMILIAR
            return False
        return True

    admitted = run_concurrently(30, guess)
    assert admitted.count(True) == app_settings.LOGIN_UNFAMILIAR_FREE_FAILURES
