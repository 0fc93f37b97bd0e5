"""A database that fails chosen statements as a dropped connection would: on PostgreSQL the statement's own
backend is terminated (the driver sees a closed connection and the pool discards it); on SQLite the driver
raises an I/O error. Or one that answers chosen statements only after a while, as behind a long lock."""

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.util import await_only

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


@contextlib.asynccontextmanager
async def held_statements(database: Database, verb: str, table: str) -> AsyncIterator[list[str]]:
    """While open, each statement that starts with ``verb`` and names ``table`` (as for :func:`failing_statements`)
    waits before it runs, as behind a long lock or a restart the connection waits out, until the block ends (then it
    runs as usual); yields the statements held so far."""
    names_table = re.compile(rf"\b(FROM|INTO|UPDATE)\s+{re.escape(table)}\b", re.IGNORECASE)
    held: list[str] = []
    released = asyncio.Event()
    waiting, none_waiting = 0, asyncio.Event()
    none_waiting.set()

    def before(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if released.is_set() or not statement.lstrip().upper().startswith(verb.upper()):
            return
        if names_table.search(statement) is None:
            return
        nonlocal waiting
        held.append(statement)
        waiting += 1
        none_waiting.clear()
        try:
            await_only(released.wait())  # the event loop goes on meanwhile: only this statement waits
        finally:
            waiting -= 1
            if not waiting:
                none_waiting.set()

    event.listen(database.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield held
    finally:
        released.set()
        await none_waiting.wait()  # the statements held go on first: the listener is not removed as they call it
        event.remove(database.engine.sync_engine, "before_cursor_execute", before)
