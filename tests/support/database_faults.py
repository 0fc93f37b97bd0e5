"""A database that fails chosen statements as a dropped connection would: on PostgreSQL the statement's own
backend is terminated (the driver sees a closed connection and the pool discards it); on SQLite the driver
raises an I/O error."""

import contextlib
import re
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import event

from bot.db.engine import Database


@contextlib.contextmanager
def failing_when(database: Database, fails: Callable[[str, Any], bool]) -> Iterator[None]:
    """While open, each statement for which ``fails(statement, parameters)`` is true fails as a dropped
    connection would."""

    def before(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not fails(statement, parameters):
            return
        if database.backend == "postgresql":
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # raises: the connection is gone
        raise sqlite3.OperationalError("disk I/O error (injected)")

    event.listen(database.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", before)


@contextlib.contextmanager
def failing_statements(database: Database, verb: str, table: str, *, times: int = 1) -> Iterator[list[str]]:
    """While open, the first ``times`` statements that start with ``verb`` ("SELECT", "INSERT", …) and name
    ``table`` (after FROM, INTO or UPDATE) fail; yields the statements that failed."""
    names_table = re.compile(rf"\b(FROM|INTO|UPDATE)\s+{re.escape(table)}\b", re.IGNORECASE)
    failed: list[str] = []

    def fails(statement: str, parameters: Any) -> bool:
        if len(failed) >= times or not statement.lstrip().upper().startswith(verb.upper()):
            return False
        if names_table.search(statement) is None:
            return False
        failed.append(statement)
        return True

    with failing_when(database, fails):
        yield failed
