"""Several instances behave as one system (issue 15, item 3; docs/operations.md "Scaling out").

One deployment (``tests/deployment.py``), started once, serves every check below in turn:
two gunicorn instances, A and B, behind one nginx, two Celery workers and a beat, on one
PostgreSQL database and one Redis. A check talks to A or B directly where the point is
*which* instance answers, and to nginx otherwise.

- A client deactivated in the admin on A is refused by B at B's very next request, although
  B had the client in its per-process copy a moment before (``core/config_cache.py``).
- A key rotated now in the admin on A is in B's JWKS and signs B's next token.
- One refresh token presented concurrently to A and B (public client, plain refresh grant,
  no attestation: the race is in the rotation, which every grant variant shares) leaves one
  live successor, the same one in every answer, and nothing revoked.
- A worker SIGKILLed in the middle of a periodic job (``sessions.revalidate_device_attestations``)
  leaves every row whole; the other worker gets the message back and finishes it, once.
- A second beat sends nothing while the first holds the beat lock, and takes over when the
  first is killed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
import redis
import requests
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from joserfc import jwt
from joserfc.jwk import KeySet

from accounts.models import SealedTOTPDevice, User
from accounts.testing import totp_code
from clients.flows.registration import register_client
from clients.models import Client
from core.acr import ACR_MFA
from core.crypto import token_digest
from core.models import KeyStatus, SecurityEvent, SigningKey
from idp.tests.conftest import make_pkce
from sessions.models import DeviceSession, RefreshToken, SessionStatus
from sessions.tests.test_revalidation_helpers import make_app, make_device, make_session, make_user
from tests.concurrency import run_concurrently
from tests.conftest import BrowserAgent
from tests.deployment import VISIBILITY_TIMEOUT, Deployment

pytestmark = [pytest.mark.nginx, pytest.mark.postgres, pytest.mark.redis, pytest.mark.celery, pytest.mark.live]

PASSWORD = "correct horse battery staple"
REDIRECT = "com.example.app:/oauth2redirect"


@pytest.fixture
def deployment(tmp_path: Path, transactional_db: Any) -> Iterator[Deployment]:
    running = Deployment(tmp_path)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def test_two_instances_two_workers_and_a_beat_behave_as_one_system(deployment: Deployment) -> None:
    """One deployment, started once (about 15 s), for every check: each check makes its own
    clients, users and rows, so none depends on another's leftovers."""
    a_client_deactivated_on_a_is_refused_by_b_at_its_next_request(deployment)
    a_key_rotated_on_a_is_published_and_used_by_b_at_its_next_request(deployment)
    one_refresh_token_raced_on_both_instances_leaves_one_live_successor(deployment)
    a_worker_killed_mid_job_leaves_nothing_half_done_and_the_other_finishes_it_once(deployment)
    a_second_beat_sends_nothing_while_the_first_runs_and_takes_over_when_it_is_killed(deployment)


# --------------------------------------------------------------------------- clients of the deployment
def mobile_client(name: str) -> Client:
    return register_client(name=name, public=True, redirect_uris=[REDIRECT], first_party=True).client


def signed_in(deployment: Deployment, client: Client, username: str) -> dict[str, Any]:
    """A user's first tokens: the login form and the code exchange, through nginx."""
    User.objects.create_user(username=username, password=PASSWORD)
    agent, pkce = BrowserAgent(deployment.base), make_pkce()
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
              "scope": "openid offline_access", "state": "s", "code_challenge": pkce.challenge,
              "code_challenge_method": "S256"}
    location = agent.follow_to_client(f"{deployment.base}/authorize?{urlencode(params)}", REDIRECT, username, PASSWORD)
    found = re.search(r"[?&]code=([^&]+)", location)
    assert found is not None, location
    tokens = requests.post(f"{deployment.base}/token", timeout=10, data={
        "grant_type": "authorization_code", "code": found.group(1), "redirect_uri": REDIRECT,
        "client_id": client.client_id, "code_verifier": pkce.verifier})
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


def refresh(base: str, refresh_token: str, client: Client) -> requests.Response:
    return requests.post(f"{base}/token", timeout=20, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client.client_id})


class Admin:
    """A staff member in the admin of one instance, signed in with password and TOTP."""

    def __init__(self, base: str, username: str):
        self.base, self.http = base, requests.Session()
        user = User.objects.create_user(username=username, password=PASSWORD, is_staff=True, is_superuser=True)
        device = SealedTOTPDevice.create_sealed(user, "admin")
        device.confirmed = True
        device.save()
        query = {"next": "/admin/", "acr": ACR_MFA}
        self.post("/accounts/login/", {"username": username, "password": PASSWORD, **query},
                  page=f"/accounts/login/?{urlencode(query)}")
        self.post("/accounts/login/verify/", {"method": "totp", "code": totp_code(device), **query})
        assert self.http.get(f"{base}/admin/", timeout=10, allow_redirects=False).status_code == 200

    def post(self, path: str, data: dict[str, Any], page: str | None = None) -> requests.Response:
        form = self.http.get(f"{self.base}{page or path}", timeout=10)
        found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert found is not None, form.text[:500]
        answer = self.http.post(f"{self.base}{path}", data={"csrfmiddlewaretoken": found.group(1), **data},
                                timeout=10, allow_redirects=False)
        assert answer.status_code == 302, answer.text[:1000]
        return answer

    def action(self, changelist: str, action: str, pks: list[int]) -> None:
        """Run an admin action on the selected rows, as the changelist's form does."""
        self.post(changelist, {"action": action, "index": "0", "select_across": "0", "_selected_action": pks})


def jwks(base: str) -> KeySet:
    return KeySet.import_key_set(requests.get(f"{base}/jwks.json", timeout=10).json())


def verified_kid(token: str, keys: KeySet, alg: str) -> str:
    """The ``kid`` of a token that verifies against ``keys`` (joserfc raises otherwise)."""
    return str(jwt.decode(token, keys, algorithms=[alg]).header["kid"])


# --------------------------------------------------------------------------- configuration
def a_client_deactivated_on_a_is_refused_by_b_at_its_next_request(deployment: Deployment) -> None:
    client = mobile_client("Deactivated on A")
    tokens = signed_in(deployment, client, "dora")
    warm = refresh(deployment.b.base, tokens["refresh_token"], client)  # B now holds the client in its copy
    assert warm.status_code == 200, warm.text
    live = warm.json()["refresh_token"]

    Admin(deployment.a.base, "admin-a").action("/admin/clients/client/", "deactivate", [client.pk])

    refused = refresh(deployment.b.base, live, client)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_client"
    assert not Client.objects.get(pk=client.pk).is_active
    assert SecurityEvent.objects.filter(event_type="client.deactivated", client_id=client.client_id).count() == 1
    token = RefreshToken.objects.get(token_hash=token_digest(live))  # refused, never rotated; the
    assert token.rotated_at is None and token.revoked_at is not None  # deactivation itself ended it
    assert refresh(deployment.a.base, live, client).status_code == 401


def a_key_rotated_on_a_is_published_and_used_by_b_at_its_next_request(deployment: Deployment) -> None:
    client = mobile_client("Rotation")
    alg = client.signing_alg
    tokens = signed_in(deployment, client, "ken")
    before = refresh(deployment.b.base, tokens["refresh_token"], client).json()
    old_kid = verified_kid(before["access_token"], jwks(deployment.b.base), alg)
    active = SigningKey.objects.get(alg=alg, status=KeyStatus.ACTIVE)
    assert active.kid == old_kid

    Admin(deployment.a.base, "admin-k").action("/admin/core/signingkey/", "rotate_now", [active.pk])

    new_kid = SigningKey.objects.get(alg=alg, status=KeyStatus.ACTIVE).kid
    assert new_kid != old_kid
    published_by_b = jwks(deployment.b.base)
    assert {old_kid, new_kid} <= {key.kid for key in published_by_b}  # the old key stays for its tokens
    after = refresh(deployment.b.base, before["refresh_token"], client)
    assert after.status_code == 200, after.text
    assert verified_kid(after.json()["access_token"], published_by_b, alg) == new_kid
    assert verified_kid(after.json()["id_token"], jwks(deployment.a.base), alg) == new_kid
    assert verified_kid(before["access_token"], published_by_b, alg) == old_kid


# --------------------------------------------------------------------------- refresh races
def one_refresh_token_raced_on_both_instances_leaves_one_live_successor(deployment: Deployment) -> None:
    """Eight requests at once, four to A and four to B, three rounds, each round racing the
    previous round's successor: each round's answers all carry the same successor (the
    loser of the row lock is answered as a retry inside the grace window), and the family
    holds exactly one live refresh token."""
    client = mobile_client("Race")
    presented = signed_in(deployment, client, "rae")["refresh_token"]
    instances = [deployment.a.base, deployment.b.base]
    for _ in range(3):
        answers = run_concurrently(8, lambda i: refresh(instances[i % 2], presented, client))  # noqa: B023
        assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
        successors = {a.json()["refresh_token"] for a in answers}
        assert len(successors) == 1 and presented not in successors
        presented = successors.pop()
        session = DeviceSession.objects.get(client=client)
        live = RefreshToken.objects.filter(session=session, revoked_at__isnull=True, rotated_at__isnull=True)
        assert list(live.values_list("token_hash", flat=True)) == [token_digest(presented)]
    assert session.status == SessionStatus.ACTIVE
    assert RefreshToken.objects.filter(session=session).count() == 4  # the first and one per round
    assert not RefreshToken.objects.filter(session=session, revoked_at__isnull=False).exists()
    assert not SecurityEvent.objects.filter(event_type="oauth.refresh_refused", client_id=client.client_id).exists()
    assert refresh(deployment.base, presented, client).status_code == 200  # the chain goes on


# --------------------------------------------------------------------------- workers
def _held_row(refresh_token_pk: int) -> psycopg.Connection[Any]:
    """A connection holding the row lock of one refresh token, the job's pause point."""
    db = connection.settings_dict
    raw = psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                          password=db.get("PASSWORD") or None, dbname=db["NAME"])
    raw.execute("SELECT id FROM sessions_refresh_token WHERE id = %s FOR UPDATE", [refresh_token_pk])
    return raw


def _blocked_backends() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
        return [row[0] for row in cursor.fetchall()]


def _revoked_whole(sessions: list[DeviceSession]) -> int:
    """Every session is revoked completely (session, its token, one event) or untouched;
    returns how many are revoked."""
    revoked = 0
    for session in sessions:
        session.refresh_from_db()
        live = RefreshToken.objects.filter(session=session, revoked_at__isnull=True).count()
        events = SecurityEvent.objects.filter(event_type="session.revoked", session_id=session.sid).count()
        if session.status == SessionStatus.REVOKED:
            assert (live, events) == (0, 1), session.sid
            revoked += 1
        else:
            assert (session.status, live, events) == (SessionStatus.ACTIVE, 1, 0), session.sid
    return revoked


def a_worker_killed_mid_job_leaves_nothing_half_done_and_the_other_finishes_it_once(deployment: Deployment) -> None:
    """The revalidation job revokes stale sessions page by page, each page one transaction.
    The test holds the lock of a row in the second page; the job stops there with two rows of
    that page revoked but not committed, and its worker (main process and pool child) is
    SIGKILLed. The page rolls back; ``acks_late`` left the message unacknowledged, so Redis
    gives it to the other worker after ``CELERY_VISIBILITY_TIMEOUT``, which does the rest."""
    client = mobile_client("Revalidated")
    user, app, long_ago = make_user("reval-killed"), make_app(client), timezone.now() - timedelta(days=5)
    sessions = [make_session(user, client, make_device(app, attested_at=long_ago, flagged=True), long_ago)
                for _ in range(20)]
    sender = deployment.sender()
    pause = _held_row(RefreshToken.objects.get(session=sessions[7]).pk)
    try:
        sent = sender.send_task("sessions.revalidate_device_attestations", kwargs={"batch_size": 5},
                                queue=deployment.queue)
        deployment.wait(_blocked_backends, what="the job to stop at the held row")
        took = deployment.wait(lambda: [n for n in ("worker-1", "worker-2") if f"[{sent.id}] received" in
                                        deployment.log(n)], what="the worker that took the job")
        assert _revoked_whole(sessions) == 5  # the first page committed; the second is not visible
        deployment.kill(took[0])
        pause.rollback()  # the killed worker's backend finds its client gone and rolls back
        deployment.wait(lambda: not _blocked_backends(), what="the killed worker's transaction to end")
    finally:
        pause.close()
    assert _revoked_whole(sessions) == 5
    other = "worker-2" if took[0] == "worker-1" else "worker-1"
    pks = [session.pk for session in sessions]
    deployment.wait(lambda: DeviceSession.objects.filter(pk__in=pks, status=SessionStatus.REVOKED).count() == 20,
                    timeout=VISIBILITY_TIMEOUT + 30, what="the other worker to finish the job")
    assert f"[{sent.id}] received" in deployment.log(other)  # the same message, given back

    # Acknowledged once done: nothing of this queue is left for Redis to give back (kombu's
    # "unacked" hash holds each message in flight with its routing key).
    broker = redis.Redis.from_url(deployment.env["CELERY_BROKER_URL"])

    def in_flight() -> list[bytes]:
        return [m for m in broker.hvals("unacked") if isinstance(m, bytes) and deployment.queue.encode() in m]

    deployment.wait(lambda: not in_flight(), what="the message to be acknowledged")
    deployment.worker(took[0])  # restarted: it runs nothing again
    time.sleep(2)
    assert not in_flight()
    broker.close()
    assert deployment.count(rf"\[{sent.id}\] succeeded", "worker-1", "worker-2") == 1
    assert _revoked_whole(sessions) == 20
    assert SecurityEvent.objects.filter(event_type="session.revoked", user_id=user.pk).count() == 20


# --------------------------------------------------------------------------- beat
def a_second_beat_sends_nothing_while_the_first_runs_and_takes_over_when_it_is_killed(deployment: Deployment) -> None:
    # Every purge a beat sends counts, whichever entry sent it (the hourly one of
    # vigil/schedule.py too). Runs are counted by task id and only from here on, once the
    # purges sent so far have run (a message redelivered after a killed worker runs again under
    # the same id; a busy or killed worker can run the first start's hourly purge late):
    # neither is a beat sending twice.
    any_purge = r"Sending due task [^\n]*\(idp\.purge_expired_codes_and_tokens\)"
    sent_before = deployment.count(any_purge, "beat-1")
    deployment.wait(lambda: len(_run_ids(deployment)) >= sent_before, what="the purges sent so far to run")
    earlier = _run_ids(deployment)

    def runs() -> int:
        return len(_run_ids(deployment) - earlier)

    def sends(beat: str) -> int:
        return deployment.count(any_purge, beat) - (sent_before if beat == "beat-1" else 0)

    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    entry = PeriodicTask.objects.create(name="purge every second", task="idp.purge_expired_codes_and_tokens",
                                        interval=every_second, queue=deployment.queue)
    each_second = r"Sending due task purge every second"
    try:
        deployment.beat("beat-2")
        deployment.wait(lambda: "another beat holds the beat lock; standing by" in deployment.log("beat-2"),
                        what="beat-2 to stand by")
        deployment.wait(lambda: deployment.count(each_second, "beat-1") >= 5, what="beat-1 to send five times")
        _set_enabled(entry, False)  # a pause, to count what ran against what was sent
        # Beat notices the change within a tick but may still send what its heap held: on two
        # busy cores it sent for three more seconds once, after a fixed two-second pause.
        sent = _settled(lambda: sends("beat-1"))
        deployment.wait(lambda: runs() >= sent, what="the runs")
        time.sleep(1)
        assert sends("beat-2") == 0
        assert runs() == sent == sends("beat-1")

        deployment.kill("beat-1")
        _set_enabled(entry, True)
        deployment.wait(lambda: "holding the beat lock" in deployment.log("beat-2"), what="beat-2 to take over")
        deployment.wait(lambda: deployment.count(each_second, "beat-2") >= 3, what="beat-2 to send")
        deployment.wait(lambda: runs() >= sent + 3, what="the runs")
    finally:
        entry.delete()
        every_second.delete()


def _settled(count: Callable[[], int], quiet: float = 3.0, timeout: float = 30.0) -> int:
    """``count()`` once it has not changed for ``quiet`` seconds."""
    last, since = count(), time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"still changing after {timeout:.0f} s (last {last})")


def _run_ids(deployment: Deployment) -> set[str]:
    """The ids of the purge task's successful runs, in both workers' logs."""
    pattern = r"Task idp\.purge_expired_codes_and_tokens\[([^\]]+)\] succeeded"
    return {found for name in ("worker-1", "worker-2") for found in re.findall(pattern, deployment.log(name))}


def _set_enabled(entry: PeriodicTask, enabled: bool) -> None:
    entry.enabled = enabled
    entry.save()  # django-celery-beat marks the schedule changed; beat reloads it within a tick
