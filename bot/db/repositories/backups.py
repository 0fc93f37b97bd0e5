"""Copying a SQLite database file while the bot writes to it (the SQL of ``/owner backup`` on SQLite).

PostgreSQL is backed up by ``pg_dump``, a program of its own; SQLite through its online backup API, page by
page, which gives a consistent copy while other connections keep writing.
"""

import contextlib
import sqlite3
from pathlib import Path

# How long the copy waits for a writer's lock before giving up (seconds).
SQLITE_BUSY_TIMEOUT_S = 30.0


class CopyFailed(Exception):
    """The SQLite copy failed; the message is SQLite's or the file system's."""


def copy_sqlite(source: Path, target: Path, *, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> None:
    """A consistent copy of ``source`` as one self-contained file (no WAL). Blocking: run it in a thread."""
    try:
        with (
            contextlib.closing(sqlite3.connect(source, timeout=busy_timeout_s)) as reader,
            contextlib.closing(sqlite3.connect(target)) as writer,
        ):
            reader.backup(writer)
            writer.execute("PRAGMA journal_mode = DELETE")
    except (sqlite3.Error, OSError) as exc:
        raise CopyFailed(str(exc)) from exc
