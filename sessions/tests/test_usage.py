"""POST /usage: relying services report data volume; a day far above the user's 14-day
median (and above the floor) fires the volume-anomaly signal (docs/risk.md)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from core.models import SecurityEvent
from risk.models import DailyUsage, RiskPolicy, StepUpDemand, UsageReport
from risk.volume import median_of
from sessions.models import DeviceSession, SessionStatus

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 28, 15, 0, 0, tzinfo=UTC)
TODAY = NOW.date()
MIB = 1024 * 1024


@pytest.fixture
def clock(time_machine: Any) -> Any:
    time_machine.move_to(NOW, tick=False)
    return time_machine


@pytest.fixture
def reporter(service_client: Any) -> Any:
    RiskPolicy.objects.create(client=service_client.client, accepts_usage_reports=True)
    return service_client


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def post_usage(reporter: Any, body: dict[str, Any], *, secret: str | None = None) -> Any:
    auth = basic(reporter.client.client_id, secret if secret is not None else reporter.secret)
    return HttpClient().post(reverse("risk:usage"), data=json.dumps(body), content_type="application/json",
                             HTTP_AUTHORIZATION=auth)


def report(sub: str, amount: int, *, hours: int = 1, **extra: Any) -> dict[str, Any]:
    end = NOW - timedelta(minutes=5)
    return {"sub": sub, "bytes": amount, "period_start": (end - timedelta(hours=hours)).isoformat(),
            "period_end": end.isoformat(), **extra}


def seed_history(user: Any, daily: list[int]) -> None:
    """``daily[0]`` is yesterday's total, ``daily[1]`` the day before..."""
    DailyUsage.objects.bulk_create(
        DailyUsage(user=user, day=TODAY - timedelta(days=i + 1), bytes=amount) for i, amount in enumerate(daily)
    )


def active_session(user: Any, client: Any, sid: str = "sid-1") -> DeviceSession:
    return DeviceSession.objects.create(sid=sid, user=user, client=client, auth_time=NOW, acr="urn:vigil:acr:password")


def test_a_report_is_counted_on_its_day(reporter, user, clock):
    response = post_usage(reporter, report(user.get_user_id(), 5 * MIB, report_id="r-1"))
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": True, "day": TODAY.isoformat(), "duplicate": False}
    assert response["Cache-Control"] == "no-store"
    assert DailyUsage.objects.get(user=user, day=TODAY).bytes == 5 * MIB
    event = SecurityEvent.objects.get(event_type="risk.usage_reported")
    assert event.client_id == reporter.client.client_id and event.details["day_bytes"] == 5 * MIB


def test_a_retried_report_counts_once(reporter, user, clock):
    body = report(user.get_user_id(), 5 * MIB, report_id="r-1")
    post_usage(reporter, body)
    again = post_usage(reporter, body)
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert DailyUsage.objects.get(user=user, day=TODAY).bytes == 5 * MIB
    assert UsageReport.objects.count() == 1


def test_volume_far_above_the_14_day_median_requires_step_up(reporter, user, mobile_client, clock):
    session = active_session(user, mobile_client.client)
    seed_history(user, [40 * MIB, 50 * MIB, 45 * MIB, 60 * MIB, 55 * MIB, 50 * MIB, 48 * MIB, 52 * MIB,
                        47 * MIB, 51 * MIB, 49 * MIB, 50 * MIB, 53 * MIB, 50 * MIB, 9000 * MIB])  # 15th: outside
    assert post_usage(reporter, report(user.get_user_id(), 400 * MIB)).status_code == 202
    assert not SecurityEvent.objects.filter(event_type="risk.signal").exists()  # 400 MiB < 10 x 50 MiB

    response = post_usage(reporter, report(user.get_user_id(), 200 * MIB))  # today: 600 MiB

    assert response.status_code == 202
    signal = SecurityEvent.objects.get(event_type="risk.signal")
    assert signal.reason == "volume_anomaly" and signal.session_id == session.sid
    assert signal.details["day_bytes"] == 600 * MIB and signal.details["baseline_bytes"] == 50 * MIB
    assert signal.details["history_days"] == 14 and signal.details["ratio"] == 12.0
    assert signal.details["action"] == "step_up" and signal.details["source"] == "usage"
    session.refresh_from_db()
    assert session.status == SessionStatus.STEP_UP_REQUIRED and session.status_reason == "risk:volume_anomaly"
    assert StepUpDemand.objects.open().filter(user=user, client=mobile_client.client).exists()
    assert SecurityEvent.objects.get(event_type="risk.action").reason == "step_up"
    # The same day is signalled once.
    post_usage(reporter, report(user.get_user_id(), 900 * MIB))
    assert SecurityEvent.objects.filter(event_type="risk.signal").count() == 1


def test_the_floor_keeps_small_volumes_quiet(reporter, user, mobile_client, clock):
    active_session(user, mobile_client.client)
    seed_history(user, [1 * MIB] * 14)
    post_usage(reporter, report(user.get_user_id(), 90 * MIB))  # 90x the median, under the 100 MiB floor
    assert not SecurityEvent.objects.filter(event_type="risk.signal").exists()


def test_without_enough_history_there_is_no_baseline(reporter, user, mobile_client, clock):
    active_session(user, mobile_client.client)
    seed_history(user, [1 * MIB] * 6)
    post_usage(reporter, report(user.get_user_id(), 5000 * MIB))
    assert not SecurityEvent.objects.filter(event_type="risk.signal").exists()


def test_a_report_by_sid_acts_on_that_session_only(reporter, user, mobile_client, clock):
    reported = active_session(user, mobile_client.client, "sid-a")
    other = active_session(user, mobile_client.client, "sid-b")
    seed_history(user, [10 * MIB] * 14)
    body = report("", 500 * MIB)
    body.pop("sub")
    body["sid"] = "sid-a"
    assert post_usage(reporter, body).status_code == 202
    reported.refresh_from_db()
    other.refresh_from_db()
    assert reported.status == SessionStatus.STEP_UP_REQUIRED and other.status == SessionStatus.ACTIVE


@pytest.mark.parametrize("action,status", [("record", SessionStatus.ACTIVE), ("revoke", SessionStatus.REVOKED)])
def test_the_session_client_policy_picks_the_action(reporter, user, mobile_client, clock, action, status):
    RiskPolicy.objects.create(client=mobile_client.client, volume_anomaly=action)
    session = active_session(user, mobile_client.client)
    seed_history(user, [10 * MIB] * 14)
    post_usage(reporter, report(user.get_user_id(), 500 * MIB))
    session.refresh_from_db()
    assert session.status == status
    assert SecurityEvent.objects.get(event_type="risk.action").reason == action


def test_median_counts_days_without_reports_as_zero(settings):
    assert median_of([10] * 14) == (10, 14)
    assert median_of([10] * 7) == (5, 7)  # seven reported days, seven silent ones
    assert median_of([10] * 6) == (None, 6)
    settings.SESSIONS_RISK_VOLUME_MIN_HISTORY_DAYS = 1
    assert median_of([30, 10, 20]) == (0, 3)


# --- errors: exact bodies ----------------------------------------------------------------------


def test_wrong_secret_is_invalid_client(reporter, user, clock):
    response = post_usage(reporter, report(user.get_user_id(), MIB), secret="wrong")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": "Client authentication failed."}
    assert not UsageReport.objects.exists()
    assert SecurityEvent.objects.filter(event_type="risk.usage_refused", reason="invalid_client").exists()


def test_no_credentials_is_invalid_client(reporter, user, clock):
    response = HttpClient().post(reverse("risk:usage"), data=json.dumps(report(user.get_user_id(), 1)),
                                 content_type="application/json")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": "Client authentication failed."}


def test_a_public_client_cannot_report(mobile_client, user, clock):
    RiskPolicy.objects.create(client=mobile_client.client, accepts_usage_reports=True)
    body = {**report(user.get_user_id(), 1), "client_id": mobile_client.client.client_id}
    response = HttpClient().post(reverse("risk:usage"), data=json.dumps(body),
                                 content_type="application/json")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_a_client_must_be_allowed_to_report(service_client, user, clock):
    response = post_usage(service_client, report(user.get_user_id(), MIB))
    assert response.status_code == 403
    assert response.json() == {"error": "access_denied", "error_description": "This client may not report usage."}


@pytest.mark.parametrize("change,description", [
    ({"sub": ""}, "non_field_errors: give sub or sid"),
    ({"bytes": -1}, "bytes: Ensure this value is greater than or equal to 0."),
    ({"period_end": "yesterday"}, "period_end: Datetime has wrong format. Use one of these formats instead: "
                                  "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."),
])
def test_malformed_reports_are_invalid_request(reporter, user, clock, change, description):
    response = post_usage(reporter, {**report(user.get_user_id(), MIB), **change})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": description}


def test_period_rules(reporter, user, clock):
    sub = user.get_user_id()
    backwards = {**report(sub, 1), "period_start": NOW.isoformat(), "period_end": (NOW - timedelta(hours=1)).isoformat()}
    assert post_usage(reporter, backwards).json() == {
        "error": "invalid_request", "error_description": "period_end must be after period_start."}
    assert post_usage(reporter, report(sub, 1, hours=25)).json() == {
        "error": "invalid_request", "error_description": "A report covers at most 86400 seconds."}
    future = {**report(sub, 1), "period_end": (NOW + timedelta(hours=1)).isoformat()}
    assert post_usage(reporter, future).json() == {
        "error": "invalid_request", "error_description": "period_end is in the future."}


def test_unknown_subject_and_session(reporter, clock):
    unknown = post_usage(reporter, report("2c4b8f1e-0000-4000-8000-000000000000", 1))
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "unknown_subject", "error_description": "No such subject."}
    assert post_usage(reporter, report("not-a-uuid", 1)).status_code == 404
    body = {**report("", 1), "sid": "nope"}
    assert post_usage(reporter, body).json() == {"error": "unknown_subject", "error_description": "No such session."}


def test_day_is_utc_date_of_period_end(reporter, user, time_machine):
    time_machine.move_to(datetime(2026, 11, 29, 0, 30, tzinfo=UTC), tick=False)
    body = {"sub": user.get_user_id(), "bytes": 7, "period_start": "2026-11-28T23:00:00+01:00",
            "period_end": "2026-11-29T00:10:00Z"}
    assert post_usage(reporter, body).json()["day"] == date(2026, 11, 29).isoformat()
