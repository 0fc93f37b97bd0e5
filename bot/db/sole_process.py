"""One bot process per SQLite file.

Several processes share a PostgreSQL database and hear each other's changes (``NOTIFY``); two on one SQLite file
would not: what one forgets, or the maintenance mode and settings it changes, would live on in the other's caches.
So ``run`` (and ``chat``, a bot of its own) holds an operating-system lock on a file beside the database
(``hearth.db.lock``) for as long as it runs. The system releases it when the process ends, however it ends (a
``kill -9``, a crash): it never goes stale as a pid file would.
"""

import os
import sys
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from bot.db.engine import ensure_sqlite_folder, sqlite_file
from bot.errors import DatabaseUnavailable


class SqliteFileLock:
    """The lock held on a SQLite file's ``.lock`` file; :meth:`release` gives it back (once is enough)."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            os.close(descriptor)  # closing it releases the lock (the file stays: removing it would race a start)


def _try_lock(descriptor: int) -> bool:
    """Lock the whole file for this process alone, without waiting; False if another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(descriptor: int) -> str:
    """`` (process 1234)``, the process holding the lock as it wrote itself in the file, if it can be read."""
    try:
        os.lseek(descriptor, 0, os.SEEK_SET)
        pid = os.read(descriptor, 32).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


def hold_sqlite_file(url: str | URL) -> SqliteFileLock | None:
    """Take the SQLite file of ``url`` for this process alone, or raise :class:`DatabaseUnavailable` saying that
    another Hearth runs on it and what to do. None for PostgreSQL (several processes share it) or an in-memory
    SQLite database."""
    url = make_url(url)
    database = sqlite_file(url)
    if database is None:
        return None
    ensure_sqlite_folder(url)
    path = database.with_name(database.name + ".lock")
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if isinstance(exc, PermissionError):  # as the start's check of the database says it
            raise DatabaseUnavailable(
                f"cannot use the SQLite database {database} (this user may not write in the folder {path.parent}, "
                "where Hearth keeps a lock and SQLite its journal beside the file): let it, or set DATABASE_URL to a "
                "file in a folder it may write"
            ) from exc
        raise DatabaseUnavailable(
            f"cannot open {path}, which keeps a second Hearth off the SQLite database {database} "
            f"({exc.strerror or exc}): let the bot's user write in {path.parent}"
        ) from exc
    if not _try_lock(descriptor):
        holder = _holder(descriptor)
        os.close(descriptor)
        raise DatabaseUnavailable(
            f"another Hearth{holder} is already running on the SQLite database {database}: stop it first, or give "
            "this one its own DATABASE_URL (SQLite serves one process; PostgreSQL serves several)"
        )
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
    except OSError:
        pass  # only the refusal's message names the process: the lock holds without it
    return SqliteFileLock(path, descriptor)
