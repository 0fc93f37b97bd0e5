"""One bot process per SQLite file, and its tables migrated only when no bot runs on it.

Several processes share a PostgreSQL database and hear each other's changes (``NOTIFY``); two on one SQLite file
would not: what one forgets, or the maintenance mode and settings it changes, would live on in the other's caches.
So ``run`` (and ``chat``, a bot of its own) holds an operating-system lock on a file beside the database
(``hearth.db.lock``) for as long as it runs. The system releases it when the process ends, however it ends (a
``kill -9``, a crash): it never goes stale as a pid file would.

A command that migrates the file (``db upgrade``, ``db downgrade``, ``import-card``) takes the same lock while it
does, for a running bot must not have its tables taken away or changed under it; so does ``memory reembed``, for
the bot recalls and embeds with the model it started with, not the one the command re-embeds with. The holder
writes in the file who it is, ``1234 bot`` or ``1234 migrating db upgrade``, so a migrating command started beside
a bot is refused, and one started beside another migrating command waits for it (two deploy steps upgrading
together take turns).
"""

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from bot.db.engine import ensure_sqlite_folder, sqlite_file
from bot.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

_MIGRATING = "migrating "
# How often a migrating command looks again at a lock another one holds, and how many looks it waits for a holder
# that has not written who it is yet (it does so right after taking the lock) before taking it for a bot.
_RETRY_S = 0.1
_UNKNOWN_LOOKS = 50


class SqliteFileLock:
    """The lock held on a SQLite file's ``.lock`` file; :meth:`release` gives it back (once is enough)."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            with contextlib.suppress(OSError):  # who held it no longer does: the next holder is not taken for it
                os.ftruncate(descriptor, 0)
            os.close(descriptor)  # closing it releases the lock (the file stays: removing it would race a start)


def _try_lock(descriptor: int) -> bool:
    """Lock the whole file for this process alone, without waiting; False if another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            os.lseek(descriptor, 0, os.SEEK_SET)  # it locks from here: the first byte, wherever a look left off
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    return flock_alone(descriptor)


def flock_alone(descriptor: int) -> bool:
    """POSIX: take an advisory lock on the file open at ``descriptor`` for this process alone, without waiting (the
    system lets go of it when the process ends); False if another process holds it."""
    import fcntl

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@dataclass(frozen=True)
class _Holder:
    """Who holds the lock, as it wrote itself in the file."""

    pid: str | None
    migrating: str | None  # the command, when the holder migrates the file rather than runs a bot on it
    known: bool  # False: nothing (readable) written yet, as in the moment between taking the lock and writing

    def named(self, extra: str = "") -> str:
        """`` (process 1234)``, or nothing when the process is not known."""
        return f" (process {self.pid}{extra})" if self.pid else ""


def _holder(descriptor: int) -> _Holder:
    """Who holds the lock. A pid alone was written by an older Hearth, whose only holders were bots."""
    try:
        os.lseek(descriptor, 0, os.SEEK_SET)
        written = os.read(descriptor, 256).decode("ascii", "replace")
    except OSError:
        written = ""
    pid, _, role = written.partition("\n")[0].strip().partition(" ")
    if not pid.isdigit():
        return _Holder(pid=None, migrating=None, known=False)
    migrating = role.removeprefix(_MIGRATING).strip() if role.startswith(_MIGRATING) else None
    return _Holder(pid=pid, migrating=migrating or None, known=True)


def _write_holder(descriptor: int, role: str) -> None:
    """Say who holds the lock: written over what was there, then cut to it, so the file is never empty meanwhile."""
    line = f"{os.getpid()} {role}\n".encode("ascii")
    try:
        os.lseek(descriptor, 0, os.SEEK_SET)
        os.write(descriptor, line)
        os.ftruncate(descriptor, len(line))
    except OSError:
        pass  # only the refusals' messages read it: the lock holds without it


def _open_lock(url: URL) -> tuple[Path, int] | None:
    """The SQLite database of ``url`` and its lock file, opened; None for PostgreSQL or an in-memory SQLite."""
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
    return database, descriptor


def hold_sqlite_file(url: str | URL) -> SqliteFileLock | None:
    """Take the SQLite file of ``url`` for this bot alone, or raise :class:`DatabaseUnavailable` saying that
    another Hearth runs on it, or migrates it, and what to do. None for PostgreSQL (several processes share it) or
    an in-memory SQLite database."""
    opened = _open_lock(make_url(url))
    if opened is None:
        return None
    database, descriptor = opened
    if not _try_lock(descriptor):
        holder = _holder(descriptor)
        os.close(descriptor)
        if holder.migrating is not None:
            raise DatabaseUnavailable(
                f"another Hearth{holder.named(f', `{holder.migrating}`')} is migrating the SQLite database "
                f"{database}: start this one once it is done"
            )
        raise DatabaseUnavailable(
            f"another Hearth{holder.named()} is already running on the SQLite database {database}: stop it first, "
            "or give this one its own DATABASE_URL (SQLite serves one process; PostgreSQL serves several)"
        )
    _write_holder(descriptor, "bot")
    return SqliteFileLock(database.with_name(database.name + ".lock"), descriptor)


async def hold_sqlite_file_to_migrate(
    url: str | URL,
    command: str,
    *,
    waiting: Callable[[str], None] | None = None,
    why: str = "which would change its tables",
) -> SqliteFileLock | None:
    """Take the SQLite file of ``url`` while ``command`` (``db upgrade``) migrates it: a running bot's tables must
    not change under it, so beside one this raises :class:`DatabaseUnavailable` saying to stop it first, and
    ``why``; beside another migrating command it waits for that one to finish, first telling ``waiting`` (else the
    log) why, as a migration may take minutes. None for PostgreSQL (which serializes migrations itself) or an
    in-memory SQLite database."""
    opened = _open_lock(make_url(url))
    if opened is None:
        return None
    database, descriptor = opened
    try:
        unknown_looks = 0
        said = False
        while not _try_lock(descriptor):
            holder = _holder(descriptor)
            unknown_looks = 0 if holder.known else unknown_looks + 1
            if holder.migrating is None and (holder.known or unknown_looks > _UNKNOWN_LOOKS):
                raise DatabaseUnavailable(
                    f"another Hearth{holder.named()} is already running on the SQLite database {database}: stop it "
                    f"before `{command}`, {why}"
                )
            if holder.migrating is not None and not said:
                line = f"another Hearth{holder.named(f', `{holder.migrating}`')} is migrating {database}: waiting"
                (waiting or log.info)(f"{line} for it to finish")
                said = True
            await asyncio.sleep(_RETRY_S)
    except BaseException:
        os.close(descriptor)
        raise
    _write_holder(descriptor, f"{_MIGRATING}{command}")
    return SqliteFileLock(database.with_name(database.name + ".lock"), descriptor)
