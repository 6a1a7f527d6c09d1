"""The common refresh in one statement on PostgreSQL (issue 19: one commit per refresh).

``refresh.rotate`` tries this first. Everything a rotation decides that needs no database
runs before it: the policies, signing the access (and ID) token, building the rows. Then one
data-modifying ``WITH`` statement, atomic on its own:

0. ``d`` (an attested refresh): the device's conditional write its proof deferred
   (``core.deferred_write``: the App Attest counter ``WHERE counter < new``, the Play Integrity
   verdict), only while the device is active and needs no re-attestation. Its row lock is what
   gives two concurrent assertions with the same counter exactly one winner; everything below
   runs only when it changed the row (the device is locked before the family: no path locks a
   family and then its device, so the order cannot deadlock);
1. ``l``: lock the family's row, only while it is active (the lock order of every path: the
   session first, then its tokens);
2. ``t``: mark the presented token used, only if it is unrotated, unrevoked and unexpired;
3. ``s``, and the inserts (successor, access token, events): only when ``t`` changed a row.

So a rotation either happens whole or not at all. When ``t`` changed nothing (a concurrent
rotation, a grace retry, a family revoked meanwhile), or when anything before the statement
needed to write or lock (a policy that records what it saw, a locked read), this
returns None having written nothing, and ``rotate`` takes its transactional path, which
judges again under the lock. When ``d`` changed nothing, nothing at all was written: the
device's write runs alone and refuses as its proof would have (``refresh.rotate``). When ``d``
changed the row and ``t`` did not, the device's write stands (it is committed) and the
transactional path takes over. SQLite and ``SESSIONS_ROTATE_IN_ONE_STATEMENT = False`` always
take that path: same outcomes, more statements.

Each value is passed once (``s`` takes the time ``t`` wrote and the family ``l`` locked): psycopg
caches its rewriting of ``%s`` into ``$n`` only for statements of at most 50 parameters, and
with the device's write this one is close to that (the test keeps it within).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import DatabaseError, connections, router
from django.db.models import Model

from core import events, sql
from core.crypto import token_digest
from core.deferred_write import DeferredWrite
from core.events import EventType
from core.sql import QueryAttempted, gated_insert, insert_values, mark_inserted, pk_column

from ..app_settings import app_settings as sessions_settings
from ..models import DeviceSession, RefreshToken, SessionStatus
from .tokens import IssuedTokens, issue_refresh_token

Issuer = Callable[[DeviceSession], IssuedTokens]

_STEPS = """l AS (SELECT id FROM {session} WHERE id = %s AND status = %s{gate} FOR UPDATE),
t AS (UPDATE {token} SET rotated_at = %s WHERE id = %s AND rotated_at IS NULL AND revoked_at IS NULL
      AND expires_at > %s AND EXISTS (SELECT 1 FROM l) RETURNING id, rotated_at),
s AS (UPDATE {session} SET last_refresh_at = t.rotated_at, last_ip = %s::inet, last_place = %s
      FROM t, l WHERE {session}.id = l.id RETURNING {session}.id)"""


def applicable(presented: RefreshToken) -> bool:
    """Whether to try the one statement: PostgreSQL, the setting on, and a token the look-up
    found unrotated (a rotated one is a retry or reuse: judged under the lock)."""
    if not sessions_settings.ROTATE_IN_ONE_STATEMENT or presented.rotated_at is not None:
        return False
    return connections[router.db_for_write(RefreshToken)].vendor == "postgresql"


def carries_device_write(presented: RefreshToken) -> bool:
    """Whether the proof of this refresh should leave its device write to this statement (its
    ``d``: one statement and one commit fewer, issue 19). Only while the request's events are
    batched: the proof's success event is withdrawn if that write is refused."""
    return events.batching() and applicable(presented)


def rotate(
    presented: RefreshToken, raw: str, successor: str, *, now: datetime, issue: Issuer, place: str,
    ip: str | None, request: Any, device_write: DeferredWrite | None = None,
) -> tuple[DeviceSession, IssuedTokens] | None:
    """Rotate ``presented`` and issue in one statement; None: nothing of the rotation was
    written, take the transactional path. ``device_write`` (the device's conditional UPDATE,
    deferred by its proof) is the statement's first step, ``d``, and gates everything else:
    ``device_write.state`` tells whether it changed the row (done) or not (pending, nothing
    written); the caller settles it when pending."""
    session = presented.session
    touched = (session.last_refresh_at, session.last_ip, session.last_place)
    session.last_refresh_at, session.last_ip, session.last_place = now, ip, place
    held = len(events.held())
    try:
        with sql.no_writes() as rows:
            issue_refresh_token(session, presented.scope, now, raw=successor)
            issued = issue(session)
    except QueryAttempted:  # e.g. a policy that writes: all of it again, in a transaction
        session.last_refresh_at, session.last_ip, session.last_place = touched
        events.forget_held_after(held)
        return None
    issued.refresh_token = successor
    written = [*events.held(), events.build(
        EventType.OAUTH_TOKEN_REFRESHED, user=session.user, client_id=session.client.client_id,
        session_id=session.sid, request=request, jti=issued.jti,
    )]
    try:
        rotated = _run(presented, now, ip, place, [*rows, written], device_write)
    except DatabaseError:
        # Lost on the way back after it committed (the answer is lost, the client retries
        # for the same successor): its events are stored and must not be written again, nor
        # the device's write run again (its counter would refuse the retry as a replay).
        if _committed(successor):
            events.stored(written)
            if device_write is not None:
                device_write.sent(True)
        raise
    if not rotated:
        session.last_refresh_at, session.last_ip, session.last_place = touched
        return None
    events.stored(written)
    return session, issued


def _committed(successor: str) -> bool:
    """Whether the statement committed (asked only on the error path above)."""
    try:
        return RefreshToken.objects.filter(token_hash=token_digest(successor)).exists()
    except DatabaseError:  # the database is gone: not known to be stored, the batch tries again
        return False


def _run(presented: RefreshToken, now: datetime, ip: str | None, place: str,
         inserts: list[Sequence[Model]], device_write: DeferredWrite | None) -> bool:
    """The statement; False when the gate (``t``) changed no row, so nothing of the rotation
    was written (``device_write`` says whether ``d`` changed its row)."""
    alias = router.db_for_write(RefreshToken)
    connection = connections[alias]
    step, params = device_write.sql(connection) if device_write is not None else ("", [])
    session_id = presented.session.pk
    params += [session_id, SessionStatus.ACTIVE, now, presented.pk, now, ip, place]
    for objs in inserts:
        params += insert_values(objs, connection)
    sql = _statement(alias, tuple((type(objs[0]), len(objs)) for objs in inserts), step)
    with connection.cursor() as cursor:
        if device_write is not None:
            device_write.sending()
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if device_write is not None:
        changed, *row = row
        device_write.sent(bool(changed))
    rotated, *keys = row
    if not rotated:
        return False
    for objs, pks in zip(inserts, keys, strict=True):
        mark_inserted(objs, pks, alias)
    return True


@lru_cache(maxsize=64)
def _statement(alias: str, shape: tuple[tuple[type[Model], int], ...], device_step: str) -> str:
    """The SQL for inserts of that shape (models and row counts) after ``device_step`` (``d``,
    when not empty), built once."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    gate = " AND EXISTS (SELECT 1 FROM d)" if device_step else ""
    steps = _STEPS.format(session=quote(DeviceSession._meta.db_table), token=quote(RefreshToken._meta.db_table),
                          gate=gate)
    steps = f"WITH d AS ({device_step}),\n{steps}" if device_step else f"WITH {steps}"
    returned = ["(SELECT count(*) FROM d)"] if device_step else []
    returned.append("(SELECT count(*) FROM t)")
    for i, (model, rows) in enumerate(shape):
        steps += f",\ni{i} AS ({gated_insert(model, rows, 't', connection)})"
        returned.append(f"ARRAY(SELECT {quote(pk_column(model))} FROM i{i})")
    return f"{steps}\nSELECT {', '.join(returned)}"
