"""Issue 19: on PostgreSQL the attested refresh's device write (the App Attest counter, the
Play Integrity verdict) is the first step of the rotation statement (``core.deferred_write``,
``sessions/flows/rotation_statement.py``): one statement, one commit. What changes between the
proof and the statement is judged as before: a stale counter, a device suspended or revoked
meanwhile are refused exactly as by the proof, nothing written; a family revoked meanwhile, a
policy that forces the transactional path, a concurrent rotation (grace retry) keep the
device's write, done once; a statement answer lost after its commit is not run again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db import utils as db_utils
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from attestation.binding import RequestBinding, grant_hash
from attestation.models import Device, DeviceStatus
from core import keys, policy
from core.crypto import successor_token, token_digest
from core.events import EventType
from core.models import SecurityEvent
from idp.tests.conftest import form_post
from sessions.models import AccessToken, DeviceSession, RefreshToken, SessionStatus
from tests.concurrency import run_concurrently

from .test_device_bound_tokens import HEADER, App, android_app, challenge, ios_app, iphone, pixel  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("allow_test_roots")]


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("service-missing: the one-statement rotation is PostgreSQL's (DATABASE_URL=postgres://...)")


@contextmanager
def token_policy(rule: Callable[[policy.TokenContext], None]) -> Iterator[None]:
    policy.register_token_policy(rule)
    try:
        yield
    finally:
        policy._token_policies.remove(rule)


@contextmanager
def meanwhile(work: Callable[[], Any]) -> Iterator[None]:
    """Another connection does ``work`` after this refresh's proof and before its statement (a
    token policy runs in between): a concurrent change the statement must judge."""
    ran: list[bool] = []

    def rule(context: policy.TokenContext) -> None:
        if not ran:
            ran.append(True)
            run_concurrently(1, lambda _: work())

    with token_policy(rule):
        yield
    assert ran


def events() -> Counter[tuple[str, str, str]]:
    return Counter(SecurityEvent.objects.values_list("event_type", "outcome", "reason"))


def rotation_state(session: DeviceSession) -> tuple[Any, ...]:
    session.refresh_from_db()
    tokens = sorted(RefreshToken.objects.filter(session=session).values_list("token_hash", "rotated_at", "revoked_at"))
    return session.status, session.last_refresh_at, tokens, AccessToken.objects.filter(session=session).count()


def logged_in(app: App) -> tuple[DeviceSession, Device]:
    keys.ensure_keys()
    assert app.login().status_code == 200
    assert app.refresh().status_code == 200  # warm copies
    return DeviceSession.objects.get(), Device.objects.get()


def stored(raw: str) -> RefreshToken:
    return RefreshToken.objects.get(token_hash=token_digest(raw))


def xmin(model: Any, **where: Any) -> str:
    """The id of the transaction that wrote the row."""
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(model._meta.db_table)
        column, value = next(iter(where.items()))
        cursor.execute(f"SELECT xmin::text FROM {table} WHERE {column} = %s", [value])
        return str(cursor.fetchone()[0])


# --- one statement, one commit -----------------------------------------------------------------
@pytest.mark.parametrize("app_name", ["iphone", "pixel"])
def test_the_device_write_and_the_rotation_commit_together(app_name: str, request: Any) -> None:
    app: App = request.getfixturevalue(app_name)
    session, device = logged_in(app)
    with CaptureQueriesContext(connection) as captured:
        assert app.refresh().status_code == 200
    statements = [q["sql"] for q in captured.captured_queries]
    assert len(statements) == 2, "\n".join(statements)
    assert statements[0].startswith("SELECT") and statements[1].startswith('WITH d AS (UPDATE "attestation_device"')
    # One transaction wrote the device, the family's touch and the successor: one commit.
    written_by = {xmin(Device, id=device.pk), xmin(DeviceSession, id=session.pk),
                  xmin(RefreshToken, token_hash=token_digest(app.refresh_token))}
    assert len(written_by) == 1
    updated = Device.objects.get()
    assert updated.last_asserted_at is not None and device.last_asserted_at is not None
    assert updated.last_asserted_at > device.last_asserted_at
    if app_name == "iphone":
        assert updated.counter == device.counter + 1 == app.device.counter
    else:
        assert updated.verdict["play_integrity"] != device.verdict["play_integrity"]  # the new verdict, merged
        assert updated.verdict["key_attestation"] == device.verdict["key_attestation"]


# --- refused by the device's write, nothing written ----------------------------------------------
def test_two_assertions_with_the_same_counter_one_wins(iphone: App) -> None:
    session, device = logged_in(iphone)
    presented, before = iphone.refresh_token, events()
    requests_ = []
    for _ in range(2):
        binding = RequestBinding(challenge(iphone.client_id, "refresh"), iphone.client_id, "refresh_token",
                                 grant_hash(presented), dpop_jkt=iphone.jkt())
        requests_.append((iphone.device.assertion_params(binding, counter=device.counter + 1), iphone.headers()))

    def attempt(index: int) -> Any:
        evidence, headers = requests_[index]
        data = {"grant_type": "refresh_token", "refresh_token": presented, "client_id": iphone.client_id, **evidence}
        return form_post(HttpClient(), reverse("token"), data, **headers)

    responses = sorted(run_concurrently(2, attempt), key=lambda r: r.status_code)
    assert [r.status_code for r in responses] == [200, 400], [r.content for r in responses]
    loser = responses[1]
    assert loser.json()["error"] == "invalid_client_attestation" and loser[HEADER]
    assert "counter_not_increasing" in loser.json()["error_description"]
    assert Device.objects.get().counter == device.counter + 1
    live = RefreshToken.objects.filter(session=session, rotated_at__isnull=True, revoked_at__isnull=True)
    assert [t.token_hash for t in live] == [token_digest(responses[0].json()["refresh_token"])]
    assert events() - before == Counter({
        (EventType.ATTESTATION_ASSERT, "success", ""): 1,
        (EventType.ATTESTATION_ASSERT, "failure", "counter_not_increasing"): 1,
        (EventType.ATTESTATION_TOKEN_REFUSED, "denied", "counter_not_increasing"): 1,
        (EventType.OAUTH_TOKEN_REFRESHED, "success", ""): 1,
        (EventType.OAUTH_ERROR, "failure", "invalid_client_attestation"): 1,
    })


def test_a_counter_advanced_meanwhile_is_refused_with_nothing_written(iphone: App) -> None:
    session, device = logged_in(iphone)
    before, state = events(), rotation_state(session)
    with meanwhile(lambda: Device.objects.filter(pk=device.pk).update(counter=device.counter + 5)):
        response = iphone.refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_client_attestation"
    assert "counter_not_increasing" in response.json()["error_description"] and response[HEADER]
    assert rotation_state(session) == state  # no rotation, no successor, no access token, no touch
    assert Device.objects.get().counter == device.counter + 5
    assert events() - before == Counter({
        (EventType.ATTESTATION_ASSERT, "failure", "counter_not_increasing"): 1,
        (EventType.ATTESTATION_TOKEN_REFUSED, "denied", "counter_not_increasing"): 1,
        (EventType.OAUTH_ERROR, "failure", "invalid_client_attestation"): 1,
    })  # the assertion's success event, held for the statement, is not written
    assert cache.get(f"vigil:attestation-failures:{session.sid}") == 1  # counted as by the proof


@pytest.mark.parametrize(("status", "error", "session_status"), [
    (DeviceStatus.SUSPENDED, "invalid_client_attestation", SessionStatus.ACTIVE),
    (DeviceStatus.REVOKED, "invalid_grant", SessionStatus.REVOKED),
])
@pytest.mark.parametrize("app_name", ["iphone", "pixel"])
def test_a_device_suspended_or_revoked_meanwhile_is_refused_as_by_the_proof(
    app_name: str, status: str, error: str, session_status: str, request: Any,
) -> None:
    app: App = request.getfixturevalue(app_name)
    session, device = logged_in(app)
    before, (_, touched, tokens, issued) = events(), rotation_state(session)
    with meanwhile(lambda: Device.objects.filter(pk=device.pk).update(status=status)):
        response = app.refresh()
    assert response.status_code == 400 and response.json()["error"] == error, response.content
    reason = f"device_{status}"
    assert reason in response.json()["error_description"]
    status_now, touched_now, tokens_now, issued_now = rotation_state(session)
    assert (status_now, touched_now, len(tokens_now), issued_now) == (session_status, touched, len(tokens), issued)
    assert not [t for t in tokens_now if t[1] is None and t[2] is None and t not in tokens]  # no successor
    assert Device.objects.get().last_asserted_at == device.last_asserted_at  # the device's write did not happen
    added = events() - before
    assert added[(EventType.ATTESTATION_ASSERT, "failure", reason)] == 1
    assert added[(EventType.ATTESTATION_TOKEN_REFUSED, "denied", reason)] == 1
    assert not added[(EventType.ATTESTATION_ASSERT, "success", "")] and not added[
        (EventType.OAUTH_TOKEN_REFRESHED, "success", "")]


# --- the device's write stands when the rotation part is refused or judged under the lock -------
def test_a_family_revoked_meanwhile_keeps_the_counter(iphone: App) -> None:
    session, device = logged_in(iphone)
    presented, before = iphone.refresh_token, events()
    with meanwhile(lambda: DeviceSession.objects.filter(pk=session.pk).update(status=SessionStatus.REVOKED)):
        response = iphone.refresh()
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert Device.objects.get().counter == device.counter + 1  # the assertion counted: its counter stands
    assert stored(presented).rotated_at is None  # the presented token: not rotated
    assert not RefreshToken.objects.filter(token_hash=token_digest(successor_token(presented))).exists()
    assert events() - before == Counter({
        (EventType.ATTESTATION_ASSERT, "success", ""): 1,
        (EventType.OAUTH_REFRESH_REFUSED, "denied", "revoked"): 1,
        (EventType.OAUTH_ERROR, "failure", "invalid_grant"): 1,
    })


def test_a_policy_that_writes_gets_the_device_written_once_before_the_transaction(iphone: App) -> None:
    User = get_user_model()

    def writes(context: policy.TokenContext) -> None:
        User.objects.filter(pk=context.user.pk).update(last_login=timezone.now())

    session, device = logged_in(iphone)
    before = events()
    with token_policy(writes), CaptureQueriesContext(connection) as captured:
        assert iphone.refresh().status_code == 200
    sql = [q["sql"] for q in captured.captured_queries]
    assert len([s for s in sql if s.startswith('UPDATE "attestation_device"')]) == 1, "\n".join(sql)
    assert not any(s.startswith("WITH") for s in sql)
    assert Device.objects.get().counter == device.counter + 1
    assert events() - before == Counter({
        (EventType.ATTESTATION_ASSERT, "success", ""): 1, (EventType.OAUTH_TOKEN_REFRESHED, "success", ""): 1,
    })


def test_a_rotation_meanwhile_is_a_grace_retry_with_the_device_written_once(pixel: App) -> None:
    """Android (no counter): another refresh of the same token rotates it between this one's
    proof and its statement; the statement writes the device and nothing else, and the
    transactional path hands out the same successor again."""
    session, device = logged_in(pixel)
    presented = pixel.refresh_token
    binding = RequestBinding(challenge(pixel.client_id, "refresh"), pixel.client_id, "refresh_token",
                             grant_hash(presented), dpop_jkt=pixel.jkt())
    other = {"grant_type": "refresh_token", "refresh_token": presented, "client_id": pixel.client_id,
             **pixel.evidence(binding, "refresh")}
    other_headers, won = pixel.headers(), []

    def rotate_first() -> None:
        won.append(form_post(HttpClient(), reverse("token"), other, **other_headers))

    before = events()
    with meanwhile(rotate_first), CaptureQueriesContext(connection) as captured:
        response = pixel.refresh()
    assert won[0].status_code == 200 and response.status_code == 200, response.content
    assert response.json()["refresh_token"] == won[0].json()["refresh_token"]
    device_writes = [q["sql"] for q in captured.captured_queries if 'UPDATE "attestation_device"' in q["sql"]]
    assert len(device_writes) == 1 and device_writes[0].startswith("WITH d AS")
    assert RefreshToken.objects.filter(session=session, rotated_at__isnull=True).count() == 1
    assert events() - before == Counter({
        (EventType.ATTESTATION_ASSERT, "success", ""): 2,
        (EventType.OAUTH_TOKEN_REFRESHED, "success", ""): 1,
        (EventType.OAUTH_REFRESH_RETRIED, "success", ""): 1,
    })


# --- an answer lost after the commit --------------------------------------------------------------
def _lost() -> Exception:
    cause = psycopg.OperationalError("server closed the connection unexpectedly")
    error = db_utils.OperationalError(str(cause))
    error.__cause__ = cause
    return error


@pytest.mark.parametrize("commit_unknown", [False, True])
def test_a_statement_answer_lost_after_commit_is_not_run_again(iphone: App, commit_unknown: bool) -> None:
    """The statement committed and its answer was lost (and, ``commit_unknown``, so was the
    check whether it committed): 503, the device's write is not run again (its counter would
    refuse the user's own request as a replay), nothing is counted against the device, and
    the retry with a fresh assertion gets the same successor."""
    session, device = logged_in(iphone)
    presented, before = iphone.refresh_token, events()
    lost: list[str] = []

    def lose_the_answer(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if lost and commit_unknown and 'FROM "sessions_refresh_token"' in sql and len(lost) == 1:
            lost.append(sql)
            raise _lost()
        result = execute(sql, params, many, context)
        if sql.startswith("WITH d AS"):
            lost.append(sql)
            raise _lost()
        return result

    with connection.execute_wrapper(lose_the_answer), CaptureQueriesContext(connection) as captured:
        response = iphone.refresh()
    assert response.status_code == 503 and response.json()["error"] == "temporarily_unavailable"
    assert len(lost) == (2 if commit_unknown else 1)
    assert len([q for q in captured.captured_queries if 'UPDATE "attestation_device"' in q["sql"]]) == 1
    assert Device.objects.get().counter == device.counter + 1
    assert cache.get(f"vigil:attestation-failures:{session.sid}") is None
    added = events() - before
    assert not [key for key in added if key[1] != "success"], added  # nothing against the device
    assert added[(EventType.OAUTH_TOKEN_REFRESHED, "success", "")] == 1
    iphone.refresh_token = presented
    retry = iphone.refresh(use_next=False)
    assert retry.status_code == 200, retry.content
    assert stored(retry.json()["refresh_token"]).rotated_at is None
    assert events()[(EventType.OAUTH_REFRESH_RETRIED, "success", "")] == 1


# --- psycopg converts each statement once per process ------------------------------------------
@pytest.mark.parametrize("app_name", ["iphone", "pixel"])
def test_the_one_statements_stay_within_psycopgs_conversion_cache(app_name: str, request: Any) -> None:
    """psycopg rewrites ``%s`` into ``$n`` with a regular-expression pass over the statement,
    cached only for statements of at most ``MAX_CACHED_STATEMENT_PARAMS`` (50) parameters and
    ``MAX_CACHED_STATEMENT_LENGTH`` bytes; the attested rotation had 51 and was parsed again on
    every refresh (~0.08 ms). The rotation with its device write stays within both, and a
    second refresh finds its conversion in the cache (the code exchange's statement:
    ``test_exchange_statement.py``)."""
    from psycopg import _queries

    app: App = request.getfixturevalue(app_name)
    seen: list[tuple[str, int]] = []

    def keep(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append((sql, len(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        logged_in(app)  # a code exchange and a refresh
        hits = _queries._query2pg.cache_info().hits
        assert app.refresh().status_code == 200
        assert _queries._query2pg.cache_info().hits > hits
    one_statements = [(sql, n) for sql, n in seen if sql.startswith("WITH")]
    assert sum(sql.startswith("WITH d AS") for sql, _ in one_statements) == 2  # the two rotations
    for sql, params in one_statements:
        assert params <= _queries.MAX_CACHED_STATEMENT_PARAMS, sql[:80]
        assert len(sql.encode()) <= _queries.MAX_CACHED_STATEMENT_LENGTH, sql[:80]


# --- the device's health snapshot dated again, once -----------------------------------------------
@pytest.mark.parametrize("app_name", ["iphone", "pixel"])
def test_a_health_snapshot_dated_again_leaves_the_one_statement_once(app_name: str, request: Any,
                                                                     settings: Any) -> None:
    """Every ``ATTESTATION_HEALTH_EVALUATED_AT_INTERVAL`` (600 s) an unchanged snapshot's
    ``evaluated_at`` is written again: that refresh cannot be one statement and takes the
    transactional path, which must write it. It once saw the first attempt's unsaved date, wrote
    nothing, and from then on every refresh of the device left the one statement (8 statements
    instead of 2: the bench's open loop, ten minutes after seeding)."""
    from device_health.models import DeviceHealth

    settings.ATTESTATION_HEALTH_EVALUATED_AT_INTERVAL = 600
    app: App = request.getfixturevalue(app_name)
    logged_in(app)
    old = timezone.now() - timedelta(minutes=11)
    DeviceHealth.objects.update(evaluated_at=old)
    assert app.refresh().status_code == 200  # dated again: the transactional path
    dated = DeviceHealth.objects.get().evaluated_at
    assert dated > old + timedelta(minutes=10)
    with CaptureQueriesContext(connection) as captured:
        assert app.refresh().status_code == 200
    assert len(captured.captured_queries) == 2, "\n".join(q["sql"] for q in captured.captured_queries)
    assert DeviceHealth.objects.get().evaluated_at == dated


# --- the app's retry after a 503 that came after its challenge was claimed -----------------------
def test_retrying_the_same_evidence_after_a_database_blip_never_logs_the_user_out(iphone: App,
                                                                                   settings: Any) -> None:
    """The rotation fails (the database gone) after the challenge was claimed: 503. An app that
    retries the same request after ``Retry-After`` presents a consumed challenge: it gets
    ``use_attestation_challenge`` with a fresh one, recorded, and counted against nothing, however
    often (``SESSIONS_ATTESTATION_MAX_FAILURES`` would revoke the family); the fresh challenge
    then refreshes. Counted, three such retries during one outage logged the user out."""
    settings.SESSIONS_ATTESTATION_MAX_FAILURES = 3
    session, _ = logged_in(iphone)
    binding = RequestBinding(iphone.next_challenge, iphone.client_id, "refresh_token",
                             grant_hash(iphone.refresh_token), dpop_jkt=iphone.jkt())
    evidence = iphone.device.assertion_params(binding)

    def gone(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith("WITH d AS"):
            raise _lost() from None  # before it ran: nothing committed
        return execute(sql, params, many, context)

    with connection.execute_wrapper(gone):
        blip = iphone.refresh(evidence=dict(evidence))
    assert blip.status_code == 503 and blip.json()["error"] == "temporarily_unavailable"
    before = rotation_state(session)
    for _ in range(4):
        retry = iphone.refresh(evidence=dict(evidence))  # a fresh DPoP proof, the same evidence
        assert retry.status_code == 400 and retry.json()["error"] == "use_attestation_challenge", retry.content
        assert "challenge_reused" in retry.json()["error_description"] and retry[HEADER]
    assert rotation_state(session) == before and before[0] == SessionStatus.ACTIVE
    assert cache.get(f"vigil:attestation-failures:{session.sid}") is None
    assert events()[(EventType.ATTESTATION_TOKEN_REFUSED, "denied", "challenge_reused")] == 4
    iphone.next_challenge = retry[HEADER]
    assert iphone.refresh().status_code == 200
