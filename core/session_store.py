"""Django's database sessions, with an outage told apart from a deleted session.

``django.contrib.sessions.backends.db`` turns *any* ``DatabaseError`` while updating a
session into ``UpdateError``, which ``SessionMiddleware`` answers as a 400 "the request's
session was deleted before the request completed" (with ``DEBUG`` on, a traceback page). A
session deleted by a concurrent sign-out is that; a database that went away while the
session was written is not: it is an outage, answered 503 with ``Retry-After`` by
``core.outage`` (docs/operations.md "Outages"), and the browser's retry is safe. Only the
outage is re-raised; a genuinely deleted session keeps Django's answer, a 400, also when a
flow saves the session itself inside its transaction (``SessionDeleted``): the middleware
turns only its own save's ``UpdateError`` into that 400, and one raised by a view was a 500.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted

from .outage import dependency_of


class SessionDeleted(UpdateError, SessionInterrupted):
    """The session was deleted before the request completed (a sign-out elsewhere): Django's
    ``UpdateError``, and its 400 (``SessionInterrupted`` is a ``BadRequest``) wherever raised."""


class SessionStore(db.SessionStore):
    def save(self, must_create: bool = False) -> None:
        try:
            super().save(must_create=must_create)
        except UpdateError as interrupted:
            failure = interrupted.__context__  # the DatabaseError Django replaced
            if failure is not None and dependency_of(failure) is not None:
                raise failure from failure.__cause__  # the driver's error stays behind it
            raise SessionDeleted(
                "The request's session was deleted before the request completed. The user may have logged out "
                "in a concurrent request, for example."
            ) from interrupted
