"""The common code exchange in one statement on PostgreSQL (issue 19: one commit per exchange).

``code_exchange.exchange`` tries this first. What needs no writing runs before it: building
the family, the policies, signing the tokens. Then one data-modifying ``WITH`` statement,
atomic on its own: ``c`` claims the code (only if unused); ``s`` inserts the family only when
``c`` claimed it; its tokens take ``s``'s new key; the events go in only when ``c`` claimed.
So of two concurrent exchanges exactly one writes anything, and a claimed code is reuse.

When anything on the way needs to write or lock (a policy that records what it saw, an
enrollment...), this returns None having written nothing, and the exchange takes its
transactional path. SQLite and ``SESSIONS_ROTATE_IN_ONE_STATEMENT = False`` always do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import DatabaseError, connections, router
from django.db.models import ForeignKey, Model

from core import events, sql
from core.events import EventType
from core.sql import QueryAttempted, gated_insert, insert_values, mark_inserted, pk_column

from ..app_settings import app_settings as sessions_settings
from ..models import AuthorizationCode, DeviceSession
from .tokens import IssuedTokens

Issuer = Callable[[DeviceSession], IssuedTokens]
Begin = Callable[[], DeviceSession]

_CLAIM = ("WITH c AS (UPDATE {code} SET used_at = %s, exchanged_jkt = %s WHERE id = %s AND used_at IS NULL "
          "RETURNING id)")


def applicable() -> bool:
    """PostgreSQL, with ``SESSIONS_ROTATE_IN_ONE_STATEMENT`` on."""
    if not sessions_settings.ROTATE_IN_ONE_STATEMENT:
        return False
    return connections[router.db_for_write(AuthorizationCode)].vendor == "postgresql"


def exchange(
    code: AuthorizationCode, *, now: datetime, begin: Begin, issue: Issuer, request: Any, proof_jkt: str = ""
) -> tuple[DeviceSession, IssuedTokens] | bool | None:
    """Claim ``code``, start its family (``begin()``) and issue, in one statement. The family
    and its tokens when done; False when the code was claimed meanwhile (nothing written: the
    caller refuses its reuse); None when something needed to write first (nothing written:
    the caller takes its transactional path)."""
    held = len(events.held())
    try:
        with sql.no_writes() as rows:
            session = begin()
            issued = issue(session)
    except QueryAttempted:
        events.forget_held_after(held)
        return None
    written = [*events.held(), events.build(
        EventType.OAUTH_TOKEN_ISSUED, user=code.user, client_id=code.client.client_id, session_id=session.sid,
        request=request, grant_type="authorization_code", jti=issued.jti,
    )]
    try:
        claimed = _run(code, now, proof_jkt, session, [*rows, written])
    except DatabaseError:
        if _committed(session):  # lost on the way back after it committed: stored, not to be written again
            events.stored(written)
        raise
    if not claimed:
        events.forget_held_after(held)
        return False
    events.stored(written)
    return session, issued


def _committed(session: DeviceSession) -> bool:
    try:
        return DeviceSession.objects.filter(sid=session.sid).exists()
    except DatabaseError:
        return False


def _links_to(objs: Sequence[Model], session: DeviceSession) -> str:
    """The foreign-key column of ``objs`` that points at the new ``session``, if any."""
    for field in type(objs[0])._meta.concrete_fields:
        if isinstance(field, ForeignKey) and field.related_model is DeviceSession \
                and getattr(objs[0], field.name, None) is session:
            return str(field.column)
    return ""


def _run(code: AuthorizationCode, now: datetime, proof_jkt: str, session: DeviceSession,
         inserts: list[Sequence[Model]]) -> bool:
    """The statement; False when the claim (``c``) changed no row, so nothing was written."""
    alias = router.db_for_write(AuthorizationCode)
    connection = connections[alias]
    if not inserts or inserts[0][0] is not session:
        raise QueryAttempted("the family must be the first insert")  # never: begin() runs first
    params: list[Any] = [now, proof_jkt, code.pk]
    shape = []
    for objs in inserts:
        link = "" if objs[0] is session else _links_to(objs, session)
        shape.append((type(objs[0]), len(objs), link))
        params += insert_values(objs, connection)
    with connection.cursor() as cursor:
        cursor.execute(_statement(alias, tuple(shape)), params)
        claimed, *keys = cursor.fetchone()
    if not claimed:
        return False
    for (_, _, link), objs, pks in zip(shape, inserts, keys, strict=True):
        mark_inserted(objs, pks, alias)
        for obj in objs if link else ():
            setattr(obj, link, session.pk)
    return True


@lru_cache(maxsize=64)
def _statement(alias: str, shape: tuple[tuple[type[Model], int, str], ...]) -> str:
    """The SQL for that shape (models, row counts, linked columns), built once: the family is
    step ``i0`` (gated by the claim), rows linked to it take its key."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    steps = _CLAIM.format(code=quote(AuthorizationCode._meta.db_table))
    returned = []
    for i, (model, rows, link) in enumerate(shape):
        gate = "i0" if link else "c"
        steps += f",\ni{i} AS ({gated_insert(model, rows, gate, connection, link=link)})"
        returned.append(f"ARRAY(SELECT {quote(pk_column(model))} FROM i{i})")
    return f"{steps}\nSELECT (SELECT count(*) FROM c), {', '.join(returned)}"
