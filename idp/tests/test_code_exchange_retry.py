"""A used authorization code is judged only after every check its first exchange passed
(redirect URI, PKCE verifier, DPoP key), and then it is either the retry of an exchange whose
answer was lost (inside the refresh grace window, the family untouched: the same first refresh
token again) or reuse (RFC 6749 §4.1.2: refused, what it issued revoked).

Attacks: a thief holding only the code (from a log, a Referer, an intercepted redirect) can
neither revoke the family nor get tokens; a second instance with another DPoP key is reuse;
a retry after the chain moved on, or after the window, is reuse."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client as HttpClient
from joserfc.jwk import ECKey

from core import keys
from core.models import SecurityEvent
from sessions.dpop.client import create_proof
from sessions.models import AccessToken, DeviceSession, RefreshToken, SessionStatus
from tests.written_elsewhere import elsewhere

from .conftest import exchange, get_code, make_pkce
from .test_token import refresh

pytestmark = pytest.mark.django_db


def events() -> Counter[tuple[str, str]]:
    return Counter(SecurityEvent.objects.values_list("event_type", "outcome"))


def state() -> tuple[Any, ...]:
    """Every row a refused exchange must leave alone (events aside)."""
    return (list(DeviceSession.objects.order_by("pk").values()), list(RefreshToken.objects.order_by("pk").values()),
            AccessToken.objects.count())


def _proof(key: ECKey) -> str:
    return create_proof(key, method="POST", url=f"{settings.IDP_ISSUER}/token")


@pytest.fixture
def first(browser: Any, mobile_client: Any) -> dict[str, Any]:
    pkce = make_pkce()
    code, _ = get_code(browser, mobile_client.client.client_id, pkce)
    response = exchange(HttpClient(), code, pkce, mobile_client.client.client_id)
    assert response.status_code == 200, response.content
    return {"code": code, "pkce": pkce, "client_id": mobile_client.client.client_id, **response.json()}


def test_a_retry_inside_the_window_gets_the_same_refresh_token_again(first: dict[str, Any]) -> None:
    again = exchange(HttpClient(), first["code"], first["pkce"], first["client_id"])
    assert again.status_code == 200, again.content
    body = again.json()
    assert body["refresh_token"] == first["refresh_token"]
    assert body["access_token"] != first["access_token"] and "id_token" in body
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert RefreshToken.objects.count() == 1
    counted = events()
    assert counted[("oauth.code_retried", "success")] == 1
    assert counted[("oauth.code_reuse", "denied")] == 0 and counted[("session.revoked", "success")] == 0
    assert refresh(first["refresh_token"], first["client_id"]).status_code == 200  # the family works


def test_a_retry_after_the_window_is_reuse(first: dict[str, Any], time_machine: Any) -> None:
    from sessions.flows.grace import grace_seconds

    window = grace_seconds(DeviceSession.objects.get())
    time_machine.move_to(dt.datetime.now(tz=dt.UTC) + dt.timedelta(seconds=window + 5))
    again = exchange(HttpClient(), first["code"], first["pkce"], first["client_id"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert events()[("oauth.code_reuse", "denied")] == 1


def test_once_the_first_refresh_token_was_used_the_code_is_reuse(first: dict[str, Any]) -> None:
    rotated = refresh(first["refresh_token"], first["client_id"])
    assert rotated.status_code == 200
    again = exchange(HttpClient(), first["code"], first["pkce"], first["client_id"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert refresh(rotated.json()["refresh_token"], first["client_id"]).json()["error"] == "invalid_grant"
    assert events()[("oauth.code_reuse", "denied")] == 1


@pytest.mark.parametrize("late", [False, True])
def test_a_used_code_without_its_proofs_changes_nothing(first: dict[str, Any], time_machine: Any,
                                                        late: bool) -> None:
    """The thief of a used code, without the PKCE verifier (or with the wrong redirect URI),
    inside the window or long after: refused, and the user's family lives on."""
    if late:
        time_machine.move_to(dt.datetime.now(tz=dt.UTC) + dt.timedelta(days=3))
    before, counted = state(), events()
    wrong = exchange(HttpClient(), first["code"], make_pkce(), first["client_id"])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    missing = exchange(HttpClient(), first["code"], first["pkce"], first["client_id"], code_verifier="")
    assert missing.status_code == 400 and "access_token" not in missing.json()
    elsewhere = exchange(HttpClient(), first["code"], first["pkce"], first["client_id"],
                         redirect_uri="com.example.app:/elsewhere")
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_grant"
    assert state() == before
    new = events() - counted
    assert not {kind for kind, _ in new} & {"oauth.code_reuse", "oauth.code_retried", "session.revoked"}


def test_the_same_dpop_key_is_answered_again_another_key_is_reuse(browser: Any, mobile_client: Any) -> None:
    mine, other = ECKey.generate_key("P-256", private=True), ECKey.generate_key("P-256", private=True)
    pkce, client_id = make_pkce(), mobile_client.client.client_id
    code, _ = get_code(browser, client_id, pkce)
    issued = exchange(HttpClient(), code, pkce, client_id, HTTP_DPOP=_proof(mine))
    assert issued.status_code == 200 and issued.json()["token_type"] == "DPoP"
    again = exchange(HttpClient(), code, pkce, client_id, HTTP_DPOP=_proof(mine))
    assert again.status_code == 200 and again.json()["refresh_token"] == issued.json()["refresh_token"]
    assert again.json()["token_type"] == "DPoP"
    stolen = exchange(HttpClient(), code, pkce, client_id, HTTP_DPOP=_proof(other))
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED  # two instances: RFC 6749 §4.1.2
    assert events()[("oauth.code_reuse", "denied")] == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_exchange_that_committed_but_lost_its_answer_is_answered_on_retry(browser: Any,
                                                                          mobile_client: Any) -> None:
    """The one exchange statement commits, then the connection drops before its result: a 503
    asking for a retry; the retry gets that family's refresh token, and nothing is revoked."""
    from sessions.tests.test_refresh_outage_postgres import FailingWrite

    pkce, client_id = make_pkce(), mobile_client.client.client_id
    code, _ = get_code(browser, client_id, pkce)
    keys.ensure_keys()  # a first exchange would write the signing key: the transactional path
    failing = FailingWrite(0, after=True, only="idp_authorization_code")
    with connection.execute_wrapper(failing):
        lost = exchange(HttpClient(), code, pkce, client_id)
    assert failing.writes[0].startswith("WITH c AS (UPDATE")  # the one statement, committed on its own
    assert lost.status_code == 503 and lost.json()["error"] == "temporarily_unavailable" and lost["Retry-After"]
    family = DeviceSession.objects.get()  # it committed
    retry = exchange(HttpClient(), code, pkce, client_id)
    assert retry.status_code == 200, retry.content
    assert DeviceSession.objects.get().pk == family.pk and family.status == SessionStatus.ACTIVE
    assert refresh(retry.json()["refresh_token"], client_id).status_code == 200
    counted = events()
    assert counted[("oauth.code_reuse", "denied")] == 0 and counted[("session.revoked", "success")] == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_transactional_exchange_lost_after_its_commit_is_answered_on_retry(browser: Any,
                                                                           mobile_client: Any) -> None:
    """The transactional path (here: the first exchange also writes the signing key, which the
    one statement does not do): its COMMIT succeeds and the connection is lost before the
    answer. The 503's retry gets the committed family's refresh token; nothing is revoked."""
    from django.db import OperationalError, transaction

    pkce, client_id = make_pkce(), mobile_client.client.client_id
    code, _ = get_code(browser, client_id, pkce)
    claims: list[str] = []

    def lost_after_commit() -> None:
        raise OperationalError("injected: connection lost after COMMIT")

    def on_claim(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith(('UPDATE "idp_authorization_code"', 'WITH c AS (UPDATE')):
            claims.append(sql)
            transaction.on_commit(lost_after_commit)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(on_claim):
        lost = exchange(HttpClient(), code, pkce, client_id)
    assert claims and claims[0].startswith('UPDATE "idp_authorization_code"')  # not the one statement
    assert lost.status_code == 503 and lost.json()["error"] == "temporarily_unavailable" and lost["Retry-After"]
    family = DeviceSession.objects.get()  # it committed
    assert RefreshToken.objects.filter(session=family).count() == 1
    retry = exchange(HttpClient(), code, pkce, client_id)
    assert retry.status_code == 200, retry.content
    assert DeviceSession.objects.get().pk == family.pk and family.status == SessionStatus.ACTIVE
    assert RefreshToken.objects.filter(session=family).count() == 1  # the same first token, answered again
    assert refresh(retry.json()["refresh_token"], client_id).status_code == 200
    counted = events()
    assert counted[("oauth.code_reuse", "denied")] == 0 and counted[("session.revoked", "success")] == 0
    assert counted[("oauth.code_retried", "success")] == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_exchanges_of_one_code_end_in_one_family_every_racer_holds(browser: Any,
                                                                              mobile_client: Any) -> None:
    """An app that sends its exchange twice at once (a double tap, a retrying HTTP stack): one
    claims the code, the others wait on its row and are answered with the same family."""
    from tests.concurrency import run_concurrently

    pkce, client_id = make_pkce(), mobile_client.client.client_id
    code, _ = get_code(browser, client_id, pkce)
    answers = run_concurrently(4, lambda _: exchange(HttpClient(), code, pkce, client_id))
    assert [a.status_code for a in answers] == [200] * 4, [a.content for a in answers]
    assert len({a.json()["refresh_token"] for a in answers}) == 1
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    counted = events()
    assert counted[("oauth.token_issued", "success")] == 1 and counted[("oauth.code_retried", "success")] == 3


def _secret_post(client: Any) -> dict[str, str]:
    return {"client_secret": client.secret}


def test_a_confidential_clients_retry_needs_the_first_exchanges_dpop_key(browser: Any, service_client: Any) -> None:
    """A confidential client's family is not bound to a key (RFC 9449 §5), so the code keeps the
    key its exchange carried: the same key is a retry, another one is reuse."""
    from .conftest import SERVICE_REDIRECT

    service_client.client.first_party = True  # no consent page in between
    service_client.client.save()
    mine, other = ECKey.generate_key("P-256", private=True), ECKey.generate_key("P-256", private=True)
    pkce = make_pkce()
    code, _ = get_code(browser, service_client.client.client_id, pkce, redirect_uri=SERVICE_REDIRECT)

    def send(key: ECKey) -> Any:
        return exchange(HttpClient(), code, pkce, service_client.client.client_id, redirect_uri=SERVICE_REDIRECT,
                        HTTP_DPOP=_proof(key), **_secret_post(service_client))

    first = send(mine)
    assert first.status_code == 200, first.content
    again = send(mine)
    assert again.status_code == 200 and again.json()["refresh_token"] == first.json()["refresh_token"]
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    stolen = send(other)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert DeviceSession.objects.get().status == SessionStatus.REVOKED
    assert events()[("oauth.code_reuse", "denied")] == 1


def test_a_client_without_refresh_tokens_gets_its_access_token_again(browser: Any, db: Any) -> None:
    """No first refresh token to tell whether the chain moved on: inside the window the retry
    is answered with a new access token, and nothing is revoked."""
    from clients.flows.registration import register_client

    from .conftest import MOBILE_REDIRECT

    registered = register_client(name="No refresh", public=True, redirect_uris=[MOBILE_REDIRECT], first_party=True,
                                 grant_types=["authorization_code"], client_id="no-refresh-app")
    pkce = make_pkce()
    code, _ = get_code(browser, registered.client.client_id, pkce, scope="openid profile")
    first = exchange(HttpClient(), code, pkce, registered.client.client_id)
    assert first.status_code == 200 and "refresh_token" not in first.json(), first.content
    again = exchange(HttpClient(), code, pkce, registered.client.client_id)
    assert again.status_code == 200 and "refresh_token" not in again.json()
    assert again.json()["access_token"] != first.json()["access_token"]
    assert DeviceSession.objects.get().status == SessionStatus.ACTIVE
    assert events()[("oauth.code_reuse", "denied")] == 0


def test_a_retry_a_policy_refuses_ends_the_family(first: dict[str, Any]) -> None:
    """The risk engine decides about the family a retry would continue (a new place since the
    first attempt, say): refused, and the family, whose answer the client may still hold from
    elsewhere, is revoked, not left running."""
    from core import policy
    from risk.errors import REVOKED_DESCRIPTION, RiskRefusedError

    def refuse(context: Any) -> None:
        raise RiskRefusedError(REVOKED_DESCRIPTION, lambda: None)

    policy.register_token_policy(refuse)
    try:
        again = exchange(HttpClient(), first["code"], first["pkce"], first["client_id"])
    finally:
        policy._token_policies.remove(refuse)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    family = DeviceSession.objects.get()
    assert family.status == SessionStatus.REVOKED and family.status_reason == "code_retry_refused"
    assert refresh(first["refresh_token"], first["client_id"]).json()["error"] == "invalid_grant"
    assert events()[("oauth.code_retried", "success")] == 0


def test_a_deactivated_users_code_is_simply_not_found(first: dict[str, Any], user: Any) -> None:
    """Deactivated behind the signal that revokes (raw SQL): the used code finds nothing to
    retry or revoke; no tokens, no reuse alarm about the user."""
    elsewhere(type(user)).filter(pk=user.pk).update(is_active=False)
    before, counted = state(), events()
    again = exchange(HttpClient(), first["code"], first["pkce"], first["client_id"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert state() == before
    assert not {kind for kind, _ in events() - counted} & {"oauth.code_reuse", "oauth.code_retried"}
