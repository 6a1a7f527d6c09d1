"""One beat at a time: the lock a Celery beat must hold before it sends anything.

Two beats would each send every periodic job, so every job would run twice (docs/operations.md
"Scaling out"). A beat started by mistake, or a standby kept on purpose, is harmless here:
each beat asks for the one lock at every tick and only the holder sends; the others stay
passive, say so in their log, and try again every ``VIGIL_BEAT_STANDBY_SECONDS``.

The lock is the one thing every beat already shares, the database:

- **PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``) held by a
  connection of its own. It is scoped to the database, so deployments on other databases
  of the same server do not meet. No TTL to tune: the lock goes with the connection, so a
  beat that dies (even SIGKILL) frees it at once and a standby takes over at its next try.
  The holder checks its connection at most once a second; if it broke, the beat stops
  sending and asks again.
- **SQLite** (one host, development): an exclusive ``flock`` on ``VAR_DIR/beat.lock``,
  which the kernel releases when the process ends.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import IO, Any, Protocol

from django.conf import settings
from django.db import connections

logger = logging.getLogger("vigil.beat")

LOCK_NAME = b"vigil:celery-beat"
#: The advisory lock key: 64 bits of a hash of the name (advisory keys are ``bigint``).
ADVISORY_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME).digest()[:8], "big", signed=True)
CHECK_EVERY = 1.0  # seconds between checks that a held lock is still held


class Lock(Protocol):
    def acquire(self) -> bool: ...

    def alive(self) -> bool: ...

    def release(self) -> None: ...


class AdvisoryLock:
    """``pg_try_advisory_lock`` on a connection of its own (Django may close its own
    connections between ticks; this one lives as long as the lock)."""

    def __init__(self, alias: str = "default"):
        self.alias = alias
        self.conn: Any = None

    def acquire(self) -> bool:
        self.release()
        wrapper = connections[self.alias]
        conn = wrapper.get_new_connection(wrapper.get_connection_params())
        conn.autocommit = True
        if conn.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_KEY]).fetchone()[0]:
            self.conn = conn
            return True
        conn.close()
        return False

    def alive(self) -> bool:
        try:
            self.conn.execute("SELECT 1")
        except Exception:
            logger.error("beat: the connection holding the beat lock broke; no longer sending", exc_info=True)
            self.release()
            return False
        return True

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()  # ends the session: PostgreSQL releases the lock
            except Exception:  # noqa: BLE001 - already broken: nothing more to release
                pass
            self.conn = None


class FileLock:
    """An exclusive ``flock`` on one host (SQLite deployments)."""

    def __init__(self, path: Path):
        self.path = path
        self.handle: IO[bytes] | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "ab")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self.handle = handle
        return True

    def alive(self) -> bool:
        return self.handle is not None

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def default_lock() -> Lock:
    if connections["default"].vendor == "postgresql":
        return AdvisoryLock()
    return FileLock(Path(settings.VAR_DIR) / "beat.lock")


def standby_seconds() -> float:
    return float(os.environ.get("VIGIL_BEAT_STANDBY_SECONDS", "5"))


class BeatGuard:
    """Whether this beat may send now: it holds the lock (taking it when free)."""

    def __init__(self, lock: Lock | None = None, *, clock: Any = time.monotonic):
        self.lock = lock or default_lock()
        self.clock = clock
        self.holding = False
        self.checked_at = 0.0
        self.warned = False

    def may_send(self) -> bool:
        """True while this beat holds the lock; reports each change of role once."""
        now = self.clock()
        if self.holding:
            if now - self.checked_at < CHECK_EVERY:
                return True
            self.checked_at = now
            self.holding = self.lock.alive()
            return self.holding
        if self._acquire():
            self.holding, self.checked_at, self.warned = True, now, False
            logger.warning("beat: holding the beat lock (pid %s); sending periodic tasks", os.getpid())
            return True
        if not self.warned:
            logger.warning("beat: another beat holds the beat lock; standing by (pid %s), sending nothing, "
                           "trying again every %s s", os.getpid(), standby_seconds())
            self.warned = True
        return False

    def _acquire(self) -> bool:
        """Ask for the lock; a database that cannot be reached means "not now" (the beat
        stays up, sends nothing, and asks again), not a crash."""
        try:
            return self.lock.acquire()
        except Exception:
            logger.warning("beat: could not ask for the beat lock; sending nothing, trying again", exc_info=True)
            return False

    def release(self) -> None:
        self.lock.release()
        self.holding = False
