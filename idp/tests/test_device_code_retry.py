"""A redeemed device code polled again (RFC 8628 §3.4-3.5) is judged as a used authorization
code is (``sessions.flows.code_exchange.answer_again``): the retry of a poll whose answer was
lost (a mobile network, a proxy timeout), by the same client instance inside the retry window
while the family's first refresh token is unused, gets the same refresh token again with a
fresh access (and ID) token; anything else is reuse (RFC 6749 §5.2 ``invalid_grant``), and
what the first redemption issued is revoked (RFC 9700 §4.14.2's spirit, RFC 6749 §4.1.2).

Attacks: a second instance with another DPoP key (or none where the first had one), a poll
after the chain moved on or after the window, another client holding the code, a code whose
user was deactivated, concurrent polls with two keys."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.urls import reverse
from joserfc.jwk import ECKey

from clients.flows.registration import RegisteredClient, register_client
from core import jwt_tokens
from core.models import SecurityEvent
from idp.models import DeviceAuthorization, DeviceAuthorizationStatus
from idp.oauth.grants.device_code import DEVICE_CODE
from sessions.dpop.client import create_proof
from sessions.models import AccessToken, DeviceSession, RefreshToken, SessionStatus
from tests.written_elsewhere import elsewhere

from .conftest import form_post
from .test_token import refresh

pytestmark = pytest.mark.django_db
SCOPE = "openid profile offline_access"
TV = "tv-app"


@pytest.fixture
def tv(db: Any) -> RegisteredClient:
    return register_client(name="Living-room TV", public=True, redirect_uris=[], client_id=TV,
                           grant_types=[DEVICE_CODE, "refresh_token"])


def events() -> Counter[tuple[str, str, str]]:
    return Counter(SecurityEvent.objects.values_list("event_type", "outcome", "reason"))


def kinds(counted: Counter[tuple[str, str, str]]) -> set[str]:
    return {kind for kind, _, _ in counted}


def state() -> tuple[Any, ...]:
    """Every row a refused poll must leave alone (events aside)."""
    return (list(DeviceAuthorization.objects.order_by("pk").values()),
            list(DeviceSession.objects.order_by("pk").values()), list(RefreshToken.objects.order_by("pk").values()),
            list(AccessToken.objects.order_by("pk").values()))


def approved(browser: HttpClient, client_id: str = TV, **auth: str) -> str:
    """The device code of an authorization the signed-in user approved."""
    started = form_post(HttpClient(), reverse("device-authorization"), {"client_id": client_id, "scope": SCOPE,
                                                                         **auth})
    assert started.status_code == 200, started.content
    body = started.json()
    assert browser.post(reverse("device"), {"user_code": body["user_code"], "decision": "approve"}).status_code == 200
    return str(body["device_code"])


def poll(device_code: str, client_id: str = TV, *, key: ECKey | None = None, **form: str) -> Any:
    headers = {"HTTP_DPOP": create_proof(key, method="POST", url=f"{settings.IDP_ISSUER}/token")} if key else {}
    return form_post(HttpClient(), reverse("token"),
                     {"grant_type": DEVICE_CODE, "device_code": device_code, "client_id": client_id, **form}, **headers)


@pytest.fixture
def first(browser: HttpClient, tv: RegisteredClient) -> dict[str, Any]:
    device_code = approved(browser)
    response = poll(device_code)
    assert response.status_code == 200, response.content
    return {"device_code": device_code, **response.json()}


def test_a_retry_inside_the_window_gets_the_same_refresh_token_again(first: dict[str, Any]) -> None:
    """Nothing new is stored but the new access token (and the retry's record): no second
    family, no second refresh token, the code as its redemption left it."""
    family = DeviceSession.objects.get()
    codes, families, refresh_tokens = (list(DeviceAuthorization.objects.values()), list(DeviceSession.objects.values()),
                                       list(RefreshToken.objects.values()))
    again = poll(first["device_code"])
    assert again.status_code == 200, again.content
    body = again.json()
    assert body["refresh_token"] == first["refresh_token"]
    assert body["access_token"] != first["access_token"] and "id_token" in body
    assert jwt_tokens.verify(body["access_token"], typ="at+jwt")["sid"] == family.sid
    assert list(DeviceAuthorization.objects.values()) == codes
    assert list(DeviceSession.objects.values()) == families and family.status == SessionStatus.ACTIVE
    assert list(RefreshToken.objects.values()) == refresh_tokens and AccessToken.objects.count() == 2
    counted = events()
    assert counted[("oauth.token_issued", "success", "")] == 1 and counted[("oauth.code_retried", "success", "")] == 1
    assert not kinds(counted) & {"oauth.code_reuse", "session.revoked"}
    retried = SecurityEvent.objects.get(event_type="oauth.code_retried")
    assert retried.details["grant_type"] == "device_code" and retried.session_id == family.sid
    assert refresh(first["refresh_token"], TV).status_code == 200  # the family works


def _assert_reused(counted_before: Counter[tuple[str, str, str]]) -> None:
    family = DeviceSession.objects.get()
    assert family.status == SessionStatus.REVOKED and family.status_reason == "device_code_reuse"
    assert not RefreshToken.objects.filter(revoked_at=None).exists()
    assert not AccessToken.objects.filter(revoked_at=None).exists()
    new = events() - counted_before
    assert new[("oauth.code_reuse", "denied", "device_code_reuse")] == 1
    assert new[("session.revoked", "success", "device_code_reuse")] == 1
    assert new[("oauth.code_retried", "success", "")] == 0
    reused = SecurityEvent.objects.get(event_type="oauth.code_reuse")
    assert reused.details["grant_type"] == "device_code" and reused.client_id == TV


def test_a_poll_after_the_window_is_reuse(first: dict[str, Any], time_machine: Any) -> None:
    from sessions.flows.grace import grace_seconds

    window = grace_seconds(DeviceSession.objects.get())
    counted = events()
    time_machine.move_to(dt.datetime.now(tz=dt.UTC) + dt.timedelta(seconds=window + 5))
    again = poll(first["device_code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    _assert_reused(counted)
    assert refresh(first["refresh_token"], TV).json()["error"] == "invalid_grant"


def test_once_the_first_refresh_token_was_used_the_code_is_reuse(first: dict[str, Any]) -> None:
    rotated = refresh(first["refresh_token"], TV)
    assert rotated.status_code == 200
    counted = events()
    again = poll(first["device_code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    _assert_reused(counted)
    assert refresh(rotated.json()["refresh_token"], TV).json()["error"] == "invalid_grant"


def test_with_the_window_at_zero_every_second_poll_is_reuse(browser: HttpClient, tv: RegisteredClient,
                                                            settings: Any) -> None:
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 0
    device_code = approved(browser)
    assert poll(device_code).status_code == 200
    counted = events()
    assert poll(device_code).json()["error"] == "invalid_grant"
    _assert_reused(counted)


def test_the_same_dpop_key_is_answered_again_another_key_or_none_is_reuse(browser: HttpClient,
                                                                          tv: RegisteredClient) -> None:
    mine, other = ECKey.generate_key("P-256", private=True), ECKey.generate_key("P-256", private=True)
    device_code = approved(browser)
    issued = poll(device_code, key=mine)
    assert issued.status_code == 200 and issued.json()["token_type"] == "DPoP"
    again = poll(device_code, key=mine)
    assert again.status_code == 200 and again.json()["refresh_token"] == issued.json()["refresh_token"]
    assert again.json()["token_type"] == "DPoP"
    counted = events()
    stolen = poll(device_code, key=other)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    _assert_reused(counted)  # two instances: what the first redemption issued is revoked


def test_a_poll_without_the_redeeming_polls_dpop_key_is_reuse(browser: HttpClient, tv: RegisteredClient) -> None:
    device_code = approved(browser)
    assert poll(device_code, key=ECKey.generate_key("P-256", private=True)).status_code == 200
    counted = events()
    assert poll(device_code).json()["error"] == "invalid_grant"
    _assert_reused(counted)


def test_a_confidential_clients_retry_needs_the_redeeming_polls_dpop_key(browser: HttpClient, db: Any) -> None:
    """A confidential client's family is not bound to a key (RFC 9449 §5), so the redemption
    keeps the key its poll carried: the same key is a retry, another one is reuse."""
    registered = register_client(name="Set-top box", public=False, redirect_uris=[], client_id="set-top",
                                 grant_types=[DEVICE_CODE, "refresh_token"])
    secret = {"client_secret": str(registered.secret)}
    mine, other = ECKey.generate_key("P-256", private=True), ECKey.generate_key("P-256", private=True)
    device_code = approved(browser, "set-top", **secret)
    issued = poll(device_code, "set-top", key=mine, **secret)
    assert issued.status_code == 200, issued.content
    assert DeviceSession.objects.get().dpop_jkt == ""  # not bound: only the redemption remembers the key
    again = poll(device_code, "set-top", key=mine, **secret)
    assert again.status_code == 200 and again.json()["refresh_token"] == issued.json()["refresh_token"]
    stolen = poll(device_code, "set-top", key=other, **secret)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    family = DeviceSession.objects.get()
    assert family.status == SessionStatus.REVOKED and family.status_reason == "device_code_reuse"


@pytest.mark.parametrize("late", [False, True])
def test_another_client_holding_a_redeemed_code_changes_nothing(first: dict[str, Any], time_machine: Any,
                                                                late: bool) -> None:
    """The code is looked up with its client: another client's poll finds nothing, inside the
    window or long after; the family lives on, and no reuse is recorded against the user."""
    register_client(name="Other TV", public=True, redirect_uris=[], client_id="other-tv", grant_types=[DEVICE_CODE])
    if late:
        time_machine.move_to(dt.datetime.now(tz=dt.UTC) + dt.timedelta(days=3))
    before, counted = state(), events()
    stolen = poll(first["device_code"], "other-tv")
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert state() == before
    assert not kinds(events() - counted) & {"oauth.code_reuse", "oauth.code_retried", "session.revoked"}


def test_a_deactivated_users_code_is_simply_not_found(first: dict[str, Any], user: Any) -> None:
    """Deactivated behind the signal that revokes (raw SQL): the redeemed code finds nothing
    to retry or revoke; no tokens, no reuse alarm about the user."""
    elsewhere(type(user)).filter(pk=user.pk).update(is_active=False)
    before, counted = state(), events()
    again = poll(first["device_code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert state() == before
    assert not kinds(events() - counted) & {"oauth.code_reuse", "oauth.code_retried", "session.revoked"}


def test_a_retry_a_policy_refuses_ends_the_family(first: dict[str, Any]) -> None:
    """The risk engine decides about the family a retry would continue: refused, and the
    family, whose answer the device may still hold, is revoked, not left running."""
    from core import policy
    from risk.errors import REVOKED_DESCRIPTION, RiskRefusedError

    def refuse(context: Any) -> None:
        raise RiskRefusedError(REVOKED_DESCRIPTION, lambda: None)

    accesses = AccessToken.objects.count()
    policy.register_token_policy(refuse)
    try:
        again = poll(first["device_code"])
    finally:
        policy._token_policies.remove(refuse)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    family = DeviceSession.objects.get()
    assert family.status == SessionStatus.REVOKED and family.status_reason == "code_retry_refused"
    assert AccessToken.objects.count() == accesses  # the refused retry's token rolled back
    assert refresh(first["refresh_token"], TV).json()["error"] == "invalid_grant"
    assert events()[("oauth.code_retried", "success", "")] == 0
    assert DeviceAuthorization.objects.get().status == DeviceAuthorizationStatus.REDEEMED


def test_a_client_without_refresh_tokens_gets_its_access_token_again(browser: HttpClient, db: Any) -> None:
    """No first refresh token to tell whether the chain moved on: inside the window the retry
    is answered with a new access token, and nothing is revoked."""
    register_client(name="Kiosk", public=True, redirect_uris=[], client_id="kiosk", grant_types=[DEVICE_CODE])
    device_code = approved(browser, "kiosk")
    issued = poll(device_code, "kiosk")
    assert issued.status_code == 200 and "refresh_token" not in issued.json(), issued.content
    again = poll(device_code, "kiosk")
    assert again.status_code == 200 and "refresh_token" not in again.json()
    assert again.json()["access_token"] != issued.json()["access_token"]
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert events()[("oauth.code_reuse", "denied", "device_code_reuse")] == 0


def test_a_code_redeemed_before_redemptions_were_kept_is_reuse_revoking_nothing(first: dict[str, Any]) -> None:
    """A row redeemed by an earlier release has no family or time on record: refused and
    recorded as reuse; there is nothing it can be told to revoke."""
    DeviceAuthorization.objects.update(session=None, redeemed_at=None)
    again = poll(first["device_code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert events()[("oauth.code_reuse", "denied", "device_code_reuse")] == 1


def test_the_purge_keeps_a_redeemed_code_while_its_family_lives(first: dict[str, Any], time_machine: Any) -> None:
    """Expired device authorizations are purged a day later, but one whose family lives is
    kept, as a used authorization code is: presented again, it is still recognised as reuse."""
    from idp.tasks import purge_expired

    time_machine.move_to(dt.datetime.now(tz=dt.UTC) + dt.timedelta(days=3))
    assert purge_expired()["device_authorizations"] == 0
    assert poll(first["device_code"]).json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status_reason == "device_code_reuse"
    DeviceSession.objects.all().delete()
    assert purge_expired()["device_authorizations"] == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_redemption_lost_after_its_commit_is_answered_on_retry(browser: HttpClient, tv: RegisteredClient) -> None:
    """The redeeming poll commits, and the connection is lost before its answer: a 503 asking
    for a retry; the retry gets that family's refresh token, and nothing is revoked."""
    from django.db import OperationalError, connection, transaction

    device_code = approved(browser)
    redeemed: list[str] = []

    def lost_after_commit() -> None:
        raise OperationalError("injected: connection lost after COMMIT")

    def on_redeem(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith('UPDATE "idp_device_authorization"') and DeviceAuthorizationStatus.REDEEMED in params:
            redeemed.append(sql)
            transaction.on_commit(lost_after_commit)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(on_redeem):
        lost = poll(device_code)
    assert redeemed
    assert lost.status_code == 503 and lost.json()["error"] == "temporarily_unavailable" and lost["Retry-After"]
    family = DeviceSession.objects.get()  # it committed
    retry = poll(device_code)
    assert retry.status_code == 200, retry.content
    assert DeviceSession.objects.get().pk == family.pk and family.status == SessionStatus.ACTIVE
    assert RefreshToken.objects.filter(session=family).count() == 1  # the same first token, answered again
    assert refresh(retry.json()["refresh_token"], TV).status_code == 200
    counted = events()
    assert not kinds(counted) & {"oauth.code_reuse", "session.revoked"}
    assert counted[("oauth.code_retried", "success", "")] == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_polls_of_one_code_end_in_one_family_both_hold(browser: HttpClient,
                                                                      tv: RegisteredClient) -> None:
    """A device sending its poll twice at once (a retrying HTTP stack): one redeems, the other
    waits on the row's lock and is answered with the same family."""
    from tests.concurrency import run_concurrently

    device_code = approved(browser)
    answers = run_concurrently(2, lambda _: poll(device_code))
    assert [a.status_code for a in answers] == [200, 200], [a.content for a in answers]
    assert len({a.json()["refresh_token"] for a in answers}) == 1
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE and RefreshToken.objects.count() == 1
    counted = events()
    assert counted[("oauth.token_issued", "success", "")] == 1 and counted[("oauth.code_retried", "success", "")] == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_polls_with_two_keys_start_one_family_and_refuse_one(browser: HttpClient,
                                                                            tv: RegisteredClient) -> None:
    """Two instances polling one code at once with their own DPoP keys: whichever redeems,
    the other is reuse, refused; never a second family, and the one family is revoked."""
    from tests.concurrency import run_concurrently

    device_code = approved(browser)
    keys = [ECKey.generate_key("P-256", private=True) for _ in range(2)]
    answers = run_concurrently(2, lambda i: poll(device_code, key=keys[i]))
    assert sorted(a.status_code for a in answers) == [200, 400], [a.content for a in answers]
    assert next(a for a in answers if a.status_code == 400).json()["error"] == "invalid_grant"
    family = DeviceSession.objects.get()
    assert family.status == SessionStatus.REVOKED and family.status_reason == "device_code_reuse"
    counted = events()
    assert counted[("oauth.token_issued", "success", "")] == 1
    assert counted[("oauth.code_reuse", "denied", "device_code_reuse")] == 1
