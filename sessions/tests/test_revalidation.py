"""Revalidation of device-bound sessions (sessions/revalidation.py), time frozen.

Timeline of one device: attested at T0 -> stale after the max age (marked, an event) ->
still marked after the grace period (its sessions revoked, tokens too, one event each).
A fresh device, a recent assertion, a re-attestation in between: nothing happens.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine

from attestation.models import Device, DeviceStatus, Platform
from core.models import SecurityEvent
from sessions import revalidation, tasks
from sessions.models import AccessToken, DeviceSession, RefreshToken, SessionStatus

from .test_revalidation_helpers import make_app, make_client, make_device, make_session, make_user

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def policy(settings: Any) -> None:
    settings.SESSIONS_ATTESTATION_MAX_AGE_SECONDS = 24 * 3600
    settings.SESSIONS_REATTESTATION_GRACE_SECONDS = 6 * 3600
    settings.SESSIONS_ATTESTATION_MAX_AGE_BY_CLIENT = {}


@pytest.fixture
def world() -> dict[str, Any]:
    client = make_client()
    return {"client": client, "user": make_user(), "app": make_app(client)}


def _device_with_session(world: dict[str, Any], **device: Any) -> tuple[Device, DeviceSession]:
    dev = make_device(world["app"], **device)
    return dev, make_session(world["user"], world["client"], dev, device.get("attested_at", T0))


def _events(event_type: str) -> int:
    return SecurityEvent.objects.filter(event_type=event_type).count()


def _state(obj: Any) -> Any:
    obj.refresh_from_db()
    return obj


def test_stale_device_is_marked_then_revoked_after_grace(world: dict[str, Any]) -> None:
    device, session = _device_with_session(world, attested_at=T0)

    with time_machine.travel(T0 + 23 * HOUR, tick=False):
        assert revalidation.revalidate_devices().as_dict() == {"revoked_sessions": 0, "marked_devices": 0}
    with time_machine.travel(T0 + 25 * HOUR, tick=False):
        assert revalidation.revalidate_devices().as_dict() == {"revoked_sessions": 0, "marked_devices": 1}
    assert _state(device).requires_reattestation
    assert _state(session).status == SessionStatus.ACTIVE
    event = SecurityEvent.objects.get(event_type="attestation.device.reattestation_required")
    assert event.reason == "attestation_stale" and event.details["device"] == device.pk

    with time_machine.travel(T0 + 30 * HOUR, tick=False):  # inside the 6 h grace, counted from the mark
        assert revalidation.revalidate_devices().revoked_sessions == 0
    with time_machine.travel(T0 + 31 * HOUR + timedelta(seconds=1), tick=False):
        assert revalidation.revalidate_devices().as_dict() == {"revoked_sessions": 1, "marked_devices": 0}

    session = _state(session)
    assert (session.status, session.status_reason) == (SessionStatus.REVOKED, "attestation_stale")
    assert session.revoked_at == T0 + 31 * HOUR + timedelta(seconds=1)
    assert not RefreshToken.objects.filter(session=session, revoked_at__isnull=True).exists()
    assert not AccessToken.objects.filter(session=session, revoked_at__isnull=True).exists()
    revoked = SecurityEvent.objects.get(event_type="session.revoked")
    assert (revoked.reason, revoked.session_id, revoked.details["device"]) == ("attestation_stale", session.sid, device.pk)


def test_runs_are_idempotent(world: dict[str, Any]) -> None:
    _device_with_session(world, attested_at=T0)
    now = T0 + 25 * HOUR
    assert revalidation.revalidate_devices(now=now).marked_devices == 1
    assert revalidation.revalidate_devices(now=now).as_dict() == {"revoked_sessions": 0, "marked_devices": 0}
    later = now + 7 * HOUR
    assert revalidation.revalidate_devices(now=later).revoked_sessions == 1
    assert revalidation.revalidate_devices(now=later).as_dict() == {"revoked_sessions": 0, "marked_devices": 0}
    assert _events("attestation.device.reattestation_required") == 1
    assert _events("session.revoked") == 1


def test_fresh_devices_and_recent_assertions_are_untouched(world: dict[str, Any]) -> None:
    now = T0 + 100 * HOUR
    fresh, fresh_session = _device_with_session(world, attested_at=now - HOUR)
    asserted, asserted_session = _device_with_session(world, attested_at=T0, asserted_at=now - 2 * HOUR)
    assert revalidation.revalidate_devices(now=now).as_dict() == {"revoked_sessions": 0, "marked_devices": 0}
    for device, session in ((fresh, fresh_session), (asserted, asserted_session)):
        assert not _state(device).requires_reattestation
        assert _state(session).status == SessionStatus.ACTIVE
    assert not SecurityEvent.objects.exclude(event_type="client.registered").exists()


def test_reattested_device_keeps_its_session(world: dict[str, Any]) -> None:
    device, session = _device_with_session(world, attested_at=T0)
    revalidation.revalidate_devices(now=T0 + 25 * HOUR)
    # The app attests again (attestation flows clear the flag and date the attestation).
    Device.objects.filter(pk=device.pk).update(requires_reattestation=False, last_attested_at=T0 + 26 * HOUR)
    assert revalidation.revalidate_devices(now=T0 + 40 * HOUR).as_dict() == {"revoked_sessions": 0, "marked_devices": 0}
    assert _state(session).status == SessionStatus.ACTIVE


def test_only_devices_backing_an_active_session_are_marked(world: dict[str, Any]) -> None:
    lonely = make_device(world["app"], attested_at=T0)
    suspended, _ = _device_with_session(world, attested_at=T0, status=DeviceStatus.SUSPENDED)
    ended, ended_session = _device_with_session(world, attested_at=T0)
    DeviceSession.objects.filter(pk=ended_session.pk).update(status=SessionStatus.REVOKED)
    unbound = make_session(world["user"], world["client"], None, T0)
    assert revalidation.revalidate_devices(now=T0 + 100 * HOUR).as_dict() == {"revoked_sessions": 0, "marked_devices": 0}
    assert not Device.objects.filter(pk__in=[lonely.pk, suspended.pk, ended.pk], requires_reattestation=True).exists()
    assert _state(unbound).status == SessionStatus.ACTIVE


def test_a_device_is_never_marked_and_revoked_in_one_run(world: dict[str, Any]) -> None:
    """Even long past max age + grace (the task did not run for days), marking comes first and
    the device still gets its full grace, counted from the mark."""
    _, session = _device_with_session(world, attested_at=T0)
    assert revalidation.revalidate_devices(now=T0 + 200 * HOUR).as_dict() == {"revoked_sessions": 0, "marked_devices": 1}
    assert revalidation.revalidate_devices(now=T0 + 200 * HOUR).revoked_sessions == 0
    assert revalidation.revalidate_devices(now=T0 + 206 * HOUR + timedelta(seconds=1)).revoked_sessions == 1
    assert _state(session).status == SessionStatus.REVOKED


def test_per_client_max_age(world: dict[str, Any], settings: Any) -> None:
    strict = make_client("reval-strict")
    strict_device = make_device(make_app(strict), attested_at=T0)
    make_session(world["user"], strict, strict_device, T0)
    default_device, _ = _device_with_session(world, attested_at=T0)
    settings.SESSIONS_ATTESTATION_MAX_AGE_BY_CLIENT = "reval-strict=3600"
    assert revalidation.revalidate_devices(now=T0 + 2 * HOUR).marked_devices == 1
    assert _state(strict_device).requires_reattestation
    assert not _state(default_device).requires_reattestation


def test_pages_smaller_than_the_work(world: dict[str, Any]) -> None:
    sessions = [_device_with_session(world, attested_at=T0, flagged=True)[1] for _ in range(7)]
    assert revalidation.revalidate_devices(now=T0 + 31 * HOUR, batch_size=2).revoked_sessions == 7
    assert {_state(s).status for s in sessions} == {SessionStatus.REVOKED}


def test_task_wraps_the_function(world: dict[str, Any]) -> None:
    _device_with_session(world, attested_at=T0, flagged=True)
    with time_machine.travel(T0 + 31 * HOUR, tick=False):
        assert tasks.revalidate_devices.apply(kwargs={"batch_size": 10}).get() == {
            "revoked_sessions": 1, "marked_devices": 0,
        }


# --------------------------------------------------------------------------- revocation list
REVOKED = {"8350192447815228107": "REVOKED", "c35747a084470c3135aeefe2b8d40cd6": "SUSPENDED"}


def test_devices_with_a_listed_certificate_are_suspended(world: dict[str, Any]) -> None:
    listed_leaf = make_device(world["app"], attested_at=T0, serials=["1", "c35747a084470c3135aeefe2b8d40cd6"])
    listed_root = make_device(world["app"], attested_at=T0, serials=["2", "3", "8350192447815228107"])
    clean = make_device(world["app"], attested_at=T0, serials=["4", "5"])
    no_facts = make_device(world["app"], attested_at=T0)
    ios = make_device(make_app(make_client("reval-ios"), Platform.IOS), attested_at=T0, serials=["8350192447815228107"])

    assert revalidation.suspend_revoked_android_devices(REVOKED, now=T0, batch_size=2) == 2
    assert revalidation.suspend_revoked_android_devices(REVOKED, now=T0) == 0  # idempotent
    leaf = _state(listed_leaf)
    assert (leaf.status, leaf.status_changed_at) == (DeviceStatus.SUSPENDED, T0)
    assert leaf.status_reason == "revocation list: certificate c35747a084470c3135aeefe2b8d40cd6 SUSPENDED"
    assert _state(listed_root).status == DeviceStatus.SUSPENDED
    assert {_state(d).status for d in (clean, no_facts, ios)} == {DeviceStatus.ACTIVE}
    assert _events("attestation.device.suspended") == 2


def test_an_empty_list_suspends_nothing(world: dict[str, Any]) -> None:
    make_device(world["app"], attested_at=T0, serials=["1"])
    assert revalidation.suspend_revoked_android_devices({}, now=T0) == 0


def test_revoked_device_stays_revoked(world: dict[str, Any]) -> None:
    gone = make_device(world["app"], attested_at=T0, serials=["8350192447815228107"], status=DeviceStatus.REVOKED)
    assert revalidation.suspend_revoked_android_devices(REVOKED, now=T0) == 0
    assert _state(gone).status == DeviceStatus.REVOKED


def _status_list(tmp_path: Path) -> Path:
    path = tmp_path / "status.json"
    path.write_text(json.dumps({"entries": {serial: {"status": s, "reason": "KEY_COMPROMISE"}
                                            for serial, s in REVOKED.items()}}))
    return path


def test_task_reads_the_local_list(world: dict[str, Any], tmp_path: Path) -> None:
    listed = make_device(world["app"], attested_at=T0, serials=["8350192447815228107"])
    assert tasks.suspend_revoked_android_devices.apply(kwargs={"path": str(_status_list(tmp_path))}).get() == 1
    assert _state(listed).status == DeviceStatus.SUSPENDED


def test_suspension_follows_a_successful_refresh(
    world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh task is not changed: a ``task_success`` handler chains the suspension."""
    from attestation import tasks as attestation_tasks
    from vigil.celery import app

    listed = make_device(world["app"], attested_at=T0, serials=["c35747a084470c3135aeefe2b8d40cd6"])
    document = json.loads(_status_list(tmp_path).read_text())

    class Response:
        def raise_for_status(self) -> None:
            return None

        def json(self) -> Any:
            return document

    monkeypatch.setattr(attestation_tasks.requests, "get", lambda *a, **k: Response())
    target = tmp_path / "refreshed.json"
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True  # the chained task runs here, not on a broker
    try:
        attestation_tasks.refresh_android_revocation_list.apply(kwargs={"url": "https://x.test/s", "path": str(target)})
    finally:
        app.conf.task_always_eager = eager
    assert target.exists()
    assert _state(listed).status == DeviceStatus.SUSPENDED


def test_refresh_path_from_positional_or_keyword_arguments() -> None:
    class Request:
        def __init__(self, args: Any, kwargs: Any) -> None:
            self.args, self.kwargs = args, kwargs

    assert tasks._refresh_path(Request(["u", "/a.json"], {})) == "/a.json"
    assert tasks._refresh_path(Request([], {"path": "/b.json"})) == "/b.json"
    assert tasks._refresh_path(Request(None, None)) is None
