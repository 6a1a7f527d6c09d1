"""Lock order of a second factor's sign-in on PostgreSQL (``accounts/flows/second_factor.py``).

The code is spent in the transaction that signs the session in, and signing in updates the
user's row (``last_login``). A set-up confirmation (``flows.totp_enroll``) or a recovery-code
regeneration (``flows.recovery_regenerate``) holds that row's lock first, then takes the app's
or the codes' rows. A sign-in that locked the app (or the code) first and the user's row
second waited on them while they waited on it: a deadlock, one of them a 503. So the sign-in
takes the user's row first too, and holds nothing the other transaction needs meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken

from accounts.models import SealedTOTPDevice, User
from accounts.tests.conftest import code_for, login_password, signed_in
from tests.concurrency import run_concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _wait_for_a_lock_wait(timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else the transaction's first look, again
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the sign-in never waited for the user's row")


def _in_thread(work: Callable[[], Any], answers: list[Any]) -> threading.Thread:
    def run() -> None:
        try:
            answers.append(work())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("method", ["totp", "recovery"])
def test_a_second_factor_waits_for_the_users_row_before_locking_its_code(
    user: Any, totp_device: SealedTOTPDevice, recovery_codes: list[str], method: str
) -> None:
    assert connection.vendor == "postgresql"
    browser = Client()
    login_password(browser)
    code = code_for(totp_device) if method == "totp" else recovery_codes[0]
    answers: list[Any] = []
    with transaction.atomic():
        User.objects.select_for_update().get(pk=user.pk)  # as a set-up confirmation or a regeneration holds it
        thread = _in_thread(lambda: browser.post(reverse("accounts:verify"), {"method": method, "code": code}),
                            answers)
        _wait_for_a_lock_wait()
        # What that holder takes next; the waiting sign-in must not hold it (else: a deadlock).
        list(SealedTOTPDevice.objects.select_for_update(nowait=True).filter(user=user))
        list(StaticToken.objects.select_for_update(nowait=True).filter(device__user=user))
    thread.join(30)
    assert not thread.is_alive() and answers[0].status_code == 302
    assert signed_in(browser)["amr"] == ["mfa", "otp", "pwd"]


def test_the_users_row_lock_lets_a_factor_removal_record_its_event(user: Any, totp_device: SealedTOTPDevice) -> None:
    """The pending secret (here), the set-up confirmation and the regeneration hold the user's
    row with FOR NO KEY UPDATE, as the sign-in does: removing the app holds the app's row and then
    records its event, an insert that takes KEY SHARE on the user's row. Under FOR UPDATE that
    insert waited on the confirmation while the confirmation waited on the app's row: a
    deadlock. Two holders of the user's row still take turns."""
    from accounts.flows import totp
    from core.events import EventType, record
    from core.models import SecurityEvent

    def removal_records_its_event(_: int) -> str:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '3s'")
            list(SealedTOTPDevice.objects.select_for_update().filter(user=user))
            record(EventType.FACTOR_TOTP_REMOVE, user=user)
        return "recorded"

    with transaction.atomic():
        totp.pending_device(user)  # the pending secret's lock, held by this transaction from here on
        assert run_concurrently(1, removal_records_its_event, timeout=10) == ["recorded"]
        assert "could not obtain lock" in _nowait_from_another_connection(user.pk)
    assert SecurityEvent.objects.filter(event_type=EventType.FACTOR_TOTP_REMOVE, user=user).count() == 1


def _nowait_from_another_connection(user_pk: int) -> str:
    """Another holder of the user's row (FOR NO KEY UPDATE), without waiting: PostgreSQL's
    refusal while this one holds it, else "taken"."""

    def take(_: int) -> str:
        try:
            with transaction.atomic():
                list(User.objects.select_for_update(no_key=True, nowait=True).filter(pk=user_pk))
        except OperationalError as refused:
            return str(refused)
        return "taken"

    return run_concurrently(1, take, timeout=10)[0]
