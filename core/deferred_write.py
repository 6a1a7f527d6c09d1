"""A conditional write one flow decided and a later statement may carry (issue 19).

The attested refresh writes the device (its App Attest counter, its Play Integrity verdict)
with one conditional ``UPDATE ... WHERE <still provable>``, then rotates the refresh token in
one statement. On PostgreSQL the device's UPDATE can be a step of that statement
(``sessions.flows.rotation_statement``): one statement and one commit fewer. The flow that
decides the write (``attestation``) cannot know the statement (``sessions`` is above it), so
it hands the write over as this value: the ``UPDATE ... RETURNING id`` to carry, and ``run``,
the write on its own with the flow's own outcome (its refusal, its events).

Whoever holds it must end with the write done exactly once: carried by a statement that
changed the row, or ``settle()`` (``run``) before anything that must see it done. A carried
write whose statement changed nothing is pending again; one whose statement failed on the
way back may have committed, and is never run again (a retry must not refuse the user's
device over its own counter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .sql import Statement


class WriteState(Enum):
    PENDING = "pending"  # not sent: ``settle`` runs it
    SENT = "sent"  # inside a statement whose outcome is not known (yet)
    DONE = "done"  # written (or refused) exactly once


@dataclass(eq=False)
class DeferredWrite:
    """``step``'s SQL (``UPDATE ... RETURNING id`` on one row) with ``values``; ``run`` does
    the same write alone and raises the flow's refusal when it changes nothing."""

    step: Statement
    values: tuple[Any, ...]
    run: Callable[[], None]
    state: WriteState = WriteState.PENDING

    @property
    def pending(self) -> bool:
        """Neither done nor sent: a statement may carry it (else it must not: done once)."""
        return self.state is WriteState.PENDING

    def settle(self) -> None:
        """Run the write alone, unless it was done or sent (at most once, whatever happens)."""
        if not self.pending:
            return
        self.state = WriteState.DONE
        self.run()

    def sending(self) -> None:
        """A statement carries it now."""
        self.state = WriteState.SENT

    def sent(self, changed: bool) -> None:
        """The statement committed: ``changed`` (the row was written) or not (pending again:
        ``settle`` gives the flow's own outcome, normally its refusal)."""
        self.state = WriteState.DONE if changed else WriteState.PENDING

    def sql(self, connection: Any) -> tuple[str, list[Any]]:
        """The step's SQL and prepared parameters, for a statement that carries it."""
        return self.step.prepared(self.values, connection)
