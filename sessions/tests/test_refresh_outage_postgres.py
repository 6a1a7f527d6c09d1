"""Issue 12, items 5 and 6 on PostgreSQL: every write of a refresh failing once gives a clean
``temporarily_unavailable`` and leaves nothing half-done, and the same token then works; the
security event can no longer fail a refresh that committed; 20 concurrent presentations of
one token inside the grace window end with one live chain that every racer holds; and
connections killed under 8 refreshing devices (a PostgreSQL restart, approximated by
``pg_terminate_backend``) lose no family and leave none with two live tokens.
Plain and device-bound (App Attest) families both."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import OperationalError, close_old_connections, connection, transaction
from django.test import Client as HttpClient

from attestation.flows.challenges import issue_challenge
from core.app_settings import app_settings
from core.crypto import token_digest
from core.models import SecurityEvent
from idp.tests.conftest import exchange, get_code, make_pkce
from idp.tests.test_token import refresh
from sessions.models import AccessToken, DeviceSession, RefreshToken, SessionStatus
from simulator.ios import IOSDevice
from tests.concurrency import run_concurrently

from .test_device_bound_tokens import APP_ID, HEADER, App, ios_app  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("allow_test_roots"),
]

WRITES = ("INSERT", "UPDATE", "DELETE", "WITH")  # WITH: the one-statement rotation (issue 19)
REFRESH_EVENTS = ("oauth.token_refreshed", "oauth.refresh_retried")


class FailingWrite:
    """An ``execute_wrapper`` failing this connection's ``index``-th write once, as a server
    that went away fails it: before it runs, or after it ran (its result lost)."""

    def __init__(self, index: int | None = None, *, after: bool = False, only: str = ""):
        self.index, self.after, self.only = index, after, only
        self.writes: list[str] = []

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if not sql.lstrip().upper().startswith(WRITES) or self.only not in sql:
            return execute(sql, params, many, context)
        position = len(self.writes)
        self.writes.append(sql)
        if position != self.index:
            return execute(sql, params, many, context)
        if self.after:
            execute(sql, params, many, context)
        raise OperationalError("injected: server closed the connection unexpectedly")


class PlainApp:
    """A public client without a device: refreshes with the token alone."""

    def __init__(self, client_id: str, refresh_token: str):
        self.client_id, self.refresh_token = client_id, refresh_token

    def refresh(self) -> Any:
        response = refresh(self.refresh_token, self.client_id)
        if response.status_code == 200:
            self.refresh_token = response.json()["refresh_token"]
        return response

    def after_failure(self) -> None:
        """Nothing to renew: the same token is presented again."""


class IPhoneApp(App):
    """The App Attest app; after a failed response it attests over a fresh challenge (the
    error carries none), minted as the challenge endpoint would."""

    oauth_client: Any = None

    def after_failure(self) -> None:
        self.next_challenge = issue_challenge(self.oauth_client, "refresh").value


def plain_family(browser: Any, client_id: str) -> PlainApp:
    pkce = make_pkce()
    code, _ = get_code(browser, client_id, pkce)
    response = exchange(HttpClient(), code, pkce, client_id)
    assert response.status_code == 200, response.content
    return PlainApp(client_id, response.json()["refresh_token"])


def iphone_family(browser: Any, client_id: str) -> IPhoneApp:
    from joserfc.jwk import ECKey

    from clients.models import Client

    app = IPhoneApp(browser, client_id, IOSDevice(APP_ID, environment="production"),
                    ECKey.generate_key("P-256", private=True))
    assert app.login().status_code == 200
    app.oauth_client = Client.objects.get(client_id=client_id)
    return app


@pytest.fixture
def plain_client(db: Any) -> str:
    """A public client without a registered app (the mobile client gets one with ``ios_app``)."""
    from clients.flows.registration import register_client
    from idp.tests.conftest import MOBILE_REDIRECT

    registered = register_client(name="Plain", public=True, redirect_uris=[MOBILE_REDIRECT], first_party=True)
    return registered.client.client_id


@pytest.fixture(params=["plain", "iphone"])
def new_family(request: Any, browser: Any, mobile_client: Any, plain_client: str) -> Callable[[], Any]:
    if request.param == "plain":
        return lambda: plain_family(browser, plain_client)
    request.getfixturevalue("ios_app")
    return lambda: iphone_family(browser, mobile_client.client.client_id)


def session_of(app: Any) -> DeviceSession:
    return RefreshToken.objects.select_related("session").get(token_hash=token_digest(app.refresh_token)).session


def family_state(session: DeviceSession) -> tuple[Any, ...]:
    session.refresh_from_db()
    return (
        session.status,
        session.last_refresh_at,
        list(RefreshToken.objects.filter(session=session).order_by("pk")
             .values_list("token_hash", "rotated_at", "revoked_at")),
        AccessToken.objects.filter(session=session).count(),
        SecurityEvent.objects.filter(session_id=session.sid, event_type__in=REFRESH_EVENTS).count(),
    )


def live_hashes(session: DeviceSession) -> list[bytes]:
    return [bytes(h) for h in RefreshToken.objects.filter(session=session, rotated_at__isnull=True,
                                                          revoked_at__isnull=True).values_list("token_hash", flat=True)]


def assert_temporarily_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "temporarily_unavailable"
    assert response["Retry-After"] == str(app_settings.OUTAGE_RETRY_AFTER_SECONDS) and response["Cache-Control"] == "no-store"


def writes_of_one_refresh(new_family: Callable[[], Any]) -> list[str]:
    # Warm this process's configuration copies first, so the path counted (on PostgreSQL the
    # one-statement rotation) is the one every later family takes.
    assert new_family().refresh().status_code == 200
    app = new_family()
    counted = FailingWrite()
    with connection.execute_wrapper(counted):
        assert app.refresh().status_code == 200
    return counted.writes


@pytest.mark.parametrize("after", [False, True], ids=["before-it-runs", "after-it-ran"])
def test_each_write_of_a_refresh_failing_once_leaves_it_retryable(new_family: Callable[[], Any], after: bool) -> None:
    writes = writes_of_one_refresh(new_family)
    assert any("idp_security_event" in sql for sql in writes)  # the event is one of them
    for index, sql in enumerate(writes):
        app = new_family()
        presented, session = app.refresh_token, session_of(app)
        before = family_state(session)
        with connection.execute_wrapper(FailingWrite(index, after=after)):
            failed = app.refresh()
        assert_temporarily_unavailable(failed)
        if after and sql.startswith("WITH"):
            # The one-statement rotation is atomic on its own: after it ran it is committed,
            # and the lost answer is a grace retry away (the same successor, below).
            assert family_state(session) != before
        else:
            assert family_state(session) == before, f"half-done after failing: {sql[:80]}"
        app.after_failure()
        retried = app.refresh()
        assert retried.status_code == 200, (sql[:80], retried.content)
        assert app.refresh_token != presented
        assert live_hashes(session) == [token_digest(app.refresh_token)]
        assert SecurityEvent.objects.filter(session_id=session.sid, event_type="oauth.token_refreshed").count() == 1
        assert DeviceSession.objects.get(pk=session.pk).status == SessionStatus.ACTIVE


def test_a_refresh_that_committed_but_could_not_answer_is_retried_to_the_same_successor(
    new_family: Callable[[], Any],
) -> None:
    """The connection lost right after COMMIT: the client sees an error for a rotation that
    happened. Presenting the same token again is a retry, not reuse."""
    app = new_family()
    presented, session = app.refresh_token, session_of(app)

    def lost_after_commit() -> None:
        raise OperationalError("injected: connection lost after COMMIT")

    def on_successor(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith('INSERT INTO "sessions_refresh_token"'):
            transaction.on_commit(lost_after_commit)
        if sql.startswith("WITH") and 'INSERT INTO "sessions_refresh_token"' in sql:
            ran = execute(sql, params, many, context)  # one statement: committed once it ran
            lost_after_commit()
            return ran
        return execute(sql, params, many, context)

    last_event = SecurityEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    with connection.execute_wrapper(on_successor):
        assert_temporarily_unavailable(app.refresh())
    [successor] = live_hashes(session)  # it did commit
    written = [(e.event_type, e.outcome, e.reason, repr(e.details)) for e in SecurityEvent.objects.filter(pk__gt=last_event)]
    assert written and len(written) == len(set(written)), written  # each event of the attempt stored once
    assert RefreshToken.objects.get(token_hash=token_digest(presented)).rotated_at is not None
    app.after_failure()
    retried = app.refresh()
    assert retried.status_code == 200, retried.content
    assert token_digest(app.refresh_token) == successor
    assert live_hashes(session) == [successor]
    assert SecurityEvent.objects.filter(session_id=session.sid, event_type="oauth.refresh_retried").count() == 1
    assert app.refresh().status_code == 200
    assert DeviceSession.objects.get(pk=session.pk).status == SessionStatus.ACTIVE


def test_a_failing_event_insert_no_longer_costs_the_family(browser: Any, mobile_client: Any) -> None:
    """The reproduction: the rotation committed, then the batched event INSERT failed; the
    client got a 500 and its retry was judged reuse. Now the event is written inside the
    rotation's transaction: both or neither."""
    app = plain_family(browser, mobile_client.client.client_id)
    presented, session = app.refresh_token, session_of(app)
    with connection.execute_wrapper(FailingWrite(0, only="idp_security_event")):
        assert_temporarily_unavailable(app.refresh())
    assert RefreshToken.objects.get(token_hash=token_digest(presented)).rotated_at is None
    assert app.refresh().status_code == 200
    assert app.refresh().status_code == 200
    assert DeviceSession.objects.get(pk=session.pk).status == SessionStatus.ACTIVE
    assert not SecurityEvent.objects.filter(event_type="oauth.refresh_refused").exists()


def test_a_lost_response_of_an_attested_refresh_is_answered_again(
    browser: Any, mobile_client: Any, ios_app: Any
) -> None:
    app = iphone_family(browser, mobile_client.client.client_id)
    presented = app.refresh_token
    lost = app.refresh().json()["refresh_token"]
    app.refresh_token = presented  # the app never saw the response
    app.after_failure()
    again = app.refresh()
    assert again.status_code == 200 and again.json()["refresh_token"] == lost
    assert live_hashes(session_of(app)) == [token_digest(lost)]
    assert SecurityEvent.objects.filter(event_type="oauth.refresh_retried").count() == 1
    assert app.refresh().status_code == 200


def test_twenty_concurrent_presentations_in_the_grace_window_end_with_one_live_chain(
    browser: Any, mobile_client: Any, settings: Any
) -> None:
    """The reproduction: with a 10 s grace 20 racers got 20 successors, 19 dead on arrival."""
    settings.IDP_REFRESH_TOKEN_GRACE_SECONDS = 10
    client_id = mobile_client.client.client_id
    presented = plain_family(browser, client_id).refresh_token
    responses = run_concurrently(20, lambda _: refresh(presented, client_id))
    held = {r.json()["refresh_token"] for r in responses if r.status_code == 200}
    refused = [r for r in responses if r.status_code != 200]
    assert len(held) == 1, held
    assert all(r.json()["error"] == "temporarily_unavailable" for r in refused), [r.content for r in refused]
    session = DeviceSession.objects.get()
    successor = held.pop()
    assert live_hashes(session) == [token_digest(successor)]
    assert session.status == SessionStatus.ACTIVE
    assert refresh(successor, client_id).status_code == 200


def _terminate_other_backends(keep: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid NOT IN (pg_backend_pid(), %s)",
            [keep],
        )
        return int(cursor.fetchone()[0])


def test_killed_connections_under_eight_refreshing_devices_lose_no_family(
    browser: Any, mobile_client: Any, ios_app: Any, plain_client: str
) -> None:
    """Each device keeps refreshing, retrying the same token after any failure, for at least
    ``rounds`` refreshes and until the server has "restarted" ``restarts`` times, 0.3 s apart:
    every backend of the test database but the test's own is terminated, in flight or idle, as
    a restart would. The devices run through every restart (on a fast machine ten refreshes
    each could end before the first one and the test would prove nothing)."""
    rounds, restarts = 10, 8
    apps: list[Any] = [plain_family(browser, plain_client) for _ in range(4)]
    apps += [iphone_family(browser, mobile_client.client.client_id) for _ in range(4)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        mine = cursor.fetchone()[0]
    kills: list[int] = []
    restarted = threading.Event()

    def drive(app: Any) -> Counter[str]:
        seen: Counter[str] = Counter()
        while (seen["200"] < rounds or not restarted.is_set()) and sum(seen.values()) < 5000:
            try:
                response = app.refresh()
            finally:
                close_old_connections()  # what the server does at the end of every request
            seen[str(response.status_code) if response.status_code == 200 else
                 f"{response.status_code} {response.content[:60]!r}"] += 1
            if response.status_code == 503:
                app.after_failure()
            elif response.status_code != 200:
                break
        return seen

    def work(index: int) -> Counter[str]:
        if index < len(apps):
            return drive(apps[index])
        try:
            for _ in range(restarts):
                time.sleep(0.3)
                kills.append(_terminate_other_backends(mine))
        finally:
            restarted.set()
        return Counter()

    outcomes = run_concurrently(len(apps) + 1, work, timeout=300)[:-1]
    unavailable = "503 b'{\"error\": \"temporarily_unavailable\""
    assert all(seen["200"] >= rounds for seen in outcomes), outcomes  # every device got through
    assert all(k == "200" or k.startswith(unavailable) for seen in outcomes for k in seen), outcomes  # never a 500
    assert sum(kills) > 0 and sum(n for seen in outcomes for k, n in seen.items() if k != "200") > 0  # it did hit
    for app in apps:
        session = session_of(app)
        assert session.status == SessionStatus.ACTIVE, session.status_reason
        assert live_hashes(session) == [token_digest(app.refresh_token)]
    assert DeviceSession.objects.filter(status=SessionStatus.ACTIVE).count() == len(apps)
