"""Security events: every security decision is recorded once, here.

``record()`` appends a ``SecurityEvent`` row and writes the same data as one JSON
line on the ``vigil.security`` logger. Flows call it; views never write events. Every event
type is an ``EventType`` member and every outcome an ``Outcome`` member, never a string
(docs/security-events.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest

from . import request_context, sql
from .cache import settle_first
from .client_address import client_address
from .models import Outcome, SecurityEvent  # Outcome is imported from here by the flows
from .text import escaped

logger = logging.getLogger("vigil.security")
operations_logger = logging.getLogger(__name__)


class EventType(StrEnum):
    """Every kind of security event (``SecurityEvent.event_type``); each member's meaning is
    in docs/security-events.md, which lists exactly these (``idp/tests/test_event_types.py``)."""

    ATTESTATION_APP_REGISTERED = "attestation.app_registered"
    ATTESTATION_CHALLENGE = "attestation.challenge"
    ATTESTATION_ENROLL = "attestation.enroll"
    ATTESTATION_ASSERT = "attestation.assert"
    ATTESTATION_TOKEN_REFUSED = "attestation.token_refused"
    ATTESTATION_DEVICE_SUSPENDED = "attestation.device.suspended"
    ATTESTATION_DEVICE_REVOKED = "attestation.device.revoked"
    ATTESTATION_DEVICE_REACTIVATED = "attestation.device.reactivated"
    ATTESTATION_DEVICE_REATTESTATION_REQUIRED = "attestation.device.reattestation_required"
    ATTESTATION_DEVICE_DELETED = "attestation.device.deleted"
    ATTESTATION_DEVICECHECK = "attestation.devicecheck"
    ATTESTATION_SESSION_UPGRADED = "attestation.session_upgraded"
    DEVICE_COMPLIANCE_CHANGED = "device.compliance_changed"
    DEVICE_HEALTH_POLICY_CHANGED = "device_health.policy_changed"
    CLIENT_REGISTERED = "client.registered"
    CLIENT_DEACTIVATED = "client.deactivated"
    CLIENT_CHANGED = "client.changed"
    CLIENT_SECRET_ROTATED = "client.secret_rotated"
    DPOP_REFUSED = "dpop.refused"
    FACTOR_PASSKEY_REGISTER = "factor.passkey.register"
    FACTOR_PASSKEY_ADDED = "factor.passkey.added"
    FACTOR_PASSKEY_RENAMED = "factor.passkey.renamed"
    FACTOR_PASSKEY_REMOVE = "factor.passkey.remove"
    FACTOR_PASSKEY_REMOVED = "factor.passkey.removed"
    FACTOR_PASSKEY_SIGN_COUNT_REGRESSION = "factor.passkey.sign_count_regression"
    FACTOR_RECOVERY_CODE_USED = "factor.recovery_code.used"
    FACTOR_RECOVERY_CODES_REGENERATE = "factor.recovery_codes.regenerate"
    FACTOR_RECOVERY_CODES_GENERATED = "factor.recovery_codes.generated"
    FACTOR_RECOVERY_CODES_REMOVED = "factor.recovery_codes.removed"
    FACTOR_RESET = "factor.reset"
    FACTOR_TOTP_ENROLL = "factor.totp.enroll"
    FACTOR_TOTP_ENROLLED = "factor.totp.enrolled"
    FACTOR_TOTP_REMOVE = "factor.totp.remove"
    FACTOR_TOTP_REMOVED = "factor.totp.removed"
    KEYS_ROTATED = "keys.rotated"
    LOGIN_PASSWORD = "login.password"
    LOGIN_PASSKEY = "login.passkey"
    LOGIN_SECOND_FACTOR = "login.second_factor"
    LOGIN_STEP_UP = "login.step_up"
    LOGIN_COMPLETED = "login.completed"
    LOGOUT = "logout"
    LOGOUT_REFUSED = "logout.refused"
    OAUTH_BACKCHANNEL_LOGOUT_SENT = "oauth.backchannel_logout.sent"
    OAUTH_BACKCHANNEL_LOGOUT_FAILED = "oauth.backchannel_logout.failed"
    OAUTH_DEVICE_AUTHORIZATION = "oauth.device_authorization"
    OAUTH_DEVICE_USER_CODE = "oauth.device_user_code"
    OAUTH_TOKEN_EXCHANGE_REFUSED = "oauth.token_exchange_refused"
    OAUTH_ACCOUNT_SELECTED = "oauth.account_selected"
    OAUTH_ACCOUNT_SWITCHED = "oauth.account_switched"
    OAUTH_AUTHORIZE_ERROR = "oauth.authorize_error"
    OAUTH_AUTHORIZED = "oauth.authorized"
    OAUTH_CODE_REUSE = "oauth.code_reuse"
    OAUTH_CODE_RETRIED = "oauth.code_retried"
    OAUTH_CONSENT_GRANTED = "oauth.consent_granted"
    OAUTH_CONSENT_REVOKED = "oauth.consent_revoked"
    OAUTH_ERROR = "oauth.error"
    OAUTH_INTROSPECTION = "oauth.introspection"
    OAUTH_PAR_ACCEPTED = "oauth.par_accepted"
    OAUTH_PAR_REFUSED = "oauth.par_refused"
    OAUTH_PAR_REQUIRED = "oauth.par_required"
    OAUTH_REFRESH_REFUSED = "oauth.refresh_refused"
    OAUTH_REFRESH_RETRIED = "oauth.refresh_retried"
    OAUTH_REQUEST_OBJECT_REFUSED = "oauth.request_object_refused"
    OAUTH_REQUEST_URI_REFUSED = "oauth.request_uri_refused"
    OAUTH_REVOCATION = "oauth.revocation"
    OAUTH_TOKEN_ISSUED = "oauth.token_issued"
    OAUTH_TOKEN_REFRESHED = "oauth.token_refreshed"
    OUTBOUND_DESTINATION_REFUSED = "outbound.destination_refused"
    PASSWORD_CHANGED = "password.changed"
    PASSWORD_SET_BY_ADMIN = "password.set_by_admin"
    RESOURCE_TOKEN_REFUSED = "resource.token_refused"
    RISK_ACTION = "risk.action"
    RISK_POLICY_CHANGED = "risk.policy_changed"
    RISK_SIGNAL = "risk.signal"
    RISK_STEP_UP_ANSWERED = "risk.step_up_answered"
    RISK_STEP_UP_CLEARED = "risk.step_up_cleared"
    RISK_STEP_UP_PENDING = "risk.step_up_pending"
    RISK_USAGE_REFUSED = "risk.usage_refused"
    RISK_USAGE_REPORTED = "risk.usage_reported"
    SCHEDULE_CHANGED = "schedule.changed"
    GROUP_CHANGED = "group.changed"
    SERVICE_UNAVAILABLE = "service.unavailable"
    SESSION_BROWSER_SIGNED_OUT = "session.browser.signed_out"
    SESSION_REVOKED = "session.revoked"
    SESSION_STEP_UP_REQUIRED = "session.step_up_required"
    SSF_ACTION = "ssf.action"
    SSF_SET_RECEIVED = "ssf.set.received"
    SSF_SET_REFUSED = "ssf.set.refused"
    SSF_SET_DUPLICATE = "ssf.set.duplicate"
    SSF_SET_DELIVERED = "ssf.set.delivered"
    SSF_SET_REJECTED = "ssf.set.rejected"
    SSF_SET_FAILED = "ssf.set.failed"
    USER_CREATED = "user.created"
    USER_CHANGED = "user.changed"
    USER_DELETED = "user.deleted"


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address: the peer, or behind trusted proxies the address they forwarded
    (``core/client_address.py``, ``VIGIL_TRUSTED_PROXIES``)."""
    if request is None:
        return None

    return client_address(request)


def _clean(value: Any) -> Any:
    """JSON-safe and storable everywhere: no NUL character or lone surrogate (``core.text``),
    long strings cut."""
    if isinstance(value, str):
        return escaped(value)[:2000]
    if isinstance(value, dict):
        return {escaped(str(k).replace("\x00", "")): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _clean(str(value))


def build(
    event_type: EventType,
    *,
    outcome: Outcome = Outcome.SUCCESS,
    reason: str = "",
    user: Any = None,
    client_id: str = "",
    session_id: str = "",
    request: HttpRequest | None = None,
    ip_address: str | None = None,
    **details: Any,
) -> SecurityEvent:
    """The event ``record`` would write, not yet written. A request's pending first claim (its
    DPoP proof's ``jti``, ``core.cache.claiming_first``) is made before: nothing is recorded for
    a replayed proof but its refusal. ``outcome`` must be an ``Outcome`` member: a plain string,
    even one equal to a member's value, is a ``TypeError`` (mypy says so first)."""
    if not isinstance(outcome, Outcome):
        raise TypeError(f"outcome must be a core.events.Outcome member, not {outcome!r}")
    settle_first()
    user_obj = user if getattr(user, "pk", None) else None
    details = _clean(details)
    request_context.note_decision(event_type, outcome, reason, client_id)
    return SecurityEvent(
        event_type=event_type,
        outcome=outcome,
        reason=_clean(reason)[:80],
        user=user_obj,
        client_id=_clean(client_id or "")[:100],
        session_id=_clean(session_id or "")[:64],
        ip_address=ip_address or client_ip(request),
        details=details,
        request_id=request_context.current_id(),
    )


def record(event_type: EventType, *, outcome: Outcome = Outcome.SUCCESS, **fields: Any) -> SecurityEvent:
    """Write one event (``build``'s arguments): at once, or with the batch this request holds
    (``batched``)."""
    event = build(event_type, outcome=outcome, **fields)
    batch = _open_batch()
    if batch is not None:
        batch.events.append(event)  # outside any transaction of its own: written when the batch ends
        return event
    event.save()
    # The log line follows the row: written once the row is committed, never for a rollback.
    transaction.on_commit(lambda: _log(event))
    return event


def _log(event: SecurityEvent) -> None:
    user = event.user
    line = {
        "event": event.event_type,
        "outcome": event.outcome,
        "reason": event.reason,
        "user": str(user.get_user_id()) if user is not None else None,
        "client_id": event.client_id or None,
        "session_id": event.session_id or None,
        "ip": event.ip_address,
        "details": event.details,
        "id": event.pk,
        "request_id": event.request_id or None,
    }
    logger.info(event.event_type, extra={"event": line})
    for listener in _listeners:
        try:
            listener(event)
        except Exception:  # counting must never fail the decision it counts
            operations_logger.exception("event listener %r failed", listener)


# Called with every event once it is final (committed, or logged alone while the database is
# down): the metrics (``ops.event_metrics``) count security decisions here, where every flow
# already reports them, instead of each flow counting its own.
_listeners: list[Callable[[SecurityEvent], None]] = []


def subscribe(listener: Callable[[SecurityEvent], None]) -> None:
    """Call ``listener(event)`` for every final event, from a higher app's ``ready()``. It runs
    on the request's thread, so it must be cheap; an error in it is logged, never raised."""
    if listener not in _listeners:
        _listeners.append(listener)


@dataclass
class _Batch:
    depth: int
    events: list[SecurityEvent] = field(default_factory=list)


_batch: ContextVar[_Batch | None] = ContextVar("vigil_event_batch", default=None)


@contextmanager
def batched() -> Iterator[None]:
    """Write the events recorded in this block together, in one INSERT when it ends (a token
    request records two or three). Only events recorded outside any transaction opened inside
    the block wait: those are final when recorded; an event inside a transaction is written
    with it, as always, so a rollback still takes it away. The batch is written however the
    block ends, errors included. Writing it cannot fail the block: the request's work is done
    by then, so with the database gone the events go to the log alone (with an empty id) and
    the response stands: an answer already decided is never turned into a 500 (issue 12)."""
    batch = _Batch(depth=len(connection.atomic_blocks))
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
        if batch.events:
            _write_batch(batch.events)


def _write_batch(events: list[SecurityEvent]) -> None:
    try:
        sql.insert(events)
    except DatabaseError as error:
        operations_logger.error(
            "%d security events not stored (%s); on the vigil.security log only", len(events), error
        )
        for event in events:
            _log(event)
        return
    log_on_commit(events)


def log_on_commit(events: list[SecurityEvent]) -> None:
    """The log lines of rows written in one INSERT, once they are committed. Nothing else
    hears of an event: listeners subscribe to the announcements of the flows that decide
    (e.g. ``sessions.flows.revocation``), never to this table."""
    for event in events:
        transaction.on_commit(partial(_log, event))


def held() -> list[SecurityEvent]:
    """The events the request's batch holds so far (a copy), for a caller that writes them in
    a statement of its own (``sessions.flows.rotation_statement``); see ``stored``."""
    batch = _batch.get()
    return list(batch.events) if batch is not None else []


def forget_held_after(count: int) -> None:
    """Drop what the batch came to hold after its first ``count`` events: the work that recorded
    them is being done again (``sessions.flows.rotation_statement`` falling back)."""
    batch = _batch.get()
    if batch is not None:
        del batch.events[count:]


def withdraw(event: SecurityEvent) -> None:
    """Take back an event the batch holds: what it recorded did not happen after all (an
    assertion whose deferred counter write was refused, ``core.deferred_write``)."""
    batch = _batch.get()
    if batch is not None:
        batch.events[:] = [held for held in batch.events if held is not event]


def batching() -> bool:
    """Whether this request's events are held for one batch (events recorded now can still be
    withdrawn)."""
    return _open_batch() is not None


def _open_batch() -> _Batch | None:
    """The batch an event recorded now joins: one is open and no transaction was begun inside it
    (an event inside a transaction of its own is written, and rolled back, with it)."""
    batch = _batch.get()
    return batch if batch is not None and len(connection.atomic_blocks) == batch.depth else None


def stored(written: list[SecurityEvent]) -> None:
    """``written`` (held events and the caller's own, from ``build``) are committed by the
    caller's statement: the batch lets go of them and their log lines follow."""
    batch = _batch.get()
    if batch is not None:
        gone = {id(event) for event in written}
        batch.events[:] = [event for event in batch.events if id(event) not in gone]
    log_on_commit(written)


class TransactionEvents:
    """The events of one ``atomic_with_events`` block (``record`` takes ``build``'s arguments)."""

    def __init__(self) -> None:
        self.events: list[SecurityEvent] = []

    def record(self, event_type: EventType, *, outcome: Outcome = Outcome.SUCCESS, **fields: Any) -> SecurityEvent:
        event = build(event_type, outcome=outcome, **fields)
        self.events.append(event)
        return event


@contextmanager
def atomic_with_events() -> Iterator[TransactionEvents]:
    """A transaction that ends by writing, inside it and in one INSERT, the events recorded on
    the object it yields together with those the request's batch holds so far (the earlier
    steps' events, e.g. the device's attestation): the work and its record commit together,
    so neither can commit without the other, and nothing is left to write after the commit
    that could fail a response whose work is done (issue 12: a refresh that rotated must
    answer with its successor). On a rollback nothing of it is written and the held events
    stay in the batch, written when it ends as always."""
    outer = _batch.get()
    held = list(outer.events) if outer is not None else []
    if outer is not None:
        outer.events.clear()  # they are this transaction's to write now
    own = TransactionEvents()
    try:
        with transaction.atomic():
            yield own
            written = [*held, *own.events]
            if written:
                sql.insert(written)
                log_on_commit(written)
    except BaseException:
        # Rolled back (a refusal, a failed statement or COMMIT): the batch writes the held
        # events when it ends, as always. Committed and then failed (an on-commit callback,
        # the answer lost): they are stored, and writing them again would store them twice.
        if outer is not None and held and not _stored(held[0]):
            outer.events[:0] = held
        raise


def _stored(event: SecurityEvent) -> bool:
    """Whether ``event``'s row is committed (asked only on the error path above)."""
    if event.pk is None:
        return False
    try:
        return SecurityEvent.objects.filter(pk=event.pk).exists()
    except Exception:  # the database is gone or the transaction broken: not known to be stored
        return False
