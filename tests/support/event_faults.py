"""Faults for the scheduled-event tests: the database fails the statement that marks chosen events sent (just
after their delivery) or sending (just before it).

On PostgreSQL the connection really drops (the statement's own backend is terminated, so the driver sees a
closed connection and the pool discards it); on SQLite the driver raises an I/O error.
"""

import contextlib
import sqlite3
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event

from bot.db.engine import Database


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

    def before(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        ids = _marks(faults.status, statement, parameters)
        hit = sorted(ids & set(faults.always)) + sorted(
            event_id for event_id in ids & set(faults.once) if event_id not in faults.failed
        )
        if not hit:
            return
        faults.failed.extend(hit)
        if database.backend == "postgresql":
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # raises: the connection is gone
        raise sqlite3.OperationalError("disk I/O error (injected)")

    event.listen(database.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield faults
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", before)
