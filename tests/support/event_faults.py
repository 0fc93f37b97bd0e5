"""Faults for the scheduled-event tests: the database fails the statement that marks chosen events sent (just
after their delivery) or sending (just before it).

On PostgreSQL the connection really drops (the statement's own backend is terminated, so the driver sees a
closed connection and the pool discards it); on SQLite the driver raises an I/O error.
"""

import contextlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from bot.db.engine import Database
from tests.support.database_faults import failing_when


@dataclass
class MarkFaults:
    """Which events' marks to ``status`` fail: ``always`` every time, ``once`` the first time only."""

    always: Collection[int]
    once: Collection[int] = ()
    status: str = "sent"
    failed: list[int] = field(default_factory=list)  # the events whose marks failed, once per failure


def _marks(status: str, statement: str, parameters: Any) -> set[int]:
    """The event ids of an UPDATE that sets scheduled events to ``status`` (one event or many); empty otherwise."""
    if not statement.lstrip().upper().startswith("UPDATE SCHEDULED_EVENTS"):
        return set()
    values = list(parameters.values()) if isinstance(parameters, dict) else list(parameters or ())
    if status not in values:
        return set()
    return {value for value in values if isinstance(value, int) and not isinstance(value, bool)}


@contextlib.contextmanager
def failing_marks(database: Database, faults: MarkFaults) -> Iterator[MarkFaults]:
    """While open, the statements that mark ``faults``' events fail as a dropped connection would."""

    def fails(statement: str, parameters: Any) -> bool:
        ids = _marks(faults.status, statement, parameters)
        hit = sorted(ids & set(faults.always)) + sorted(
            event_id for event_id in ids & set(faults.once) if event_id not in faults.failed
        )
        faults.failed.extend(hit)
        return bool(hit)

    with failing_when(database, fails):
        yield faults
