"""The owner's maintenance commands that act on the database as a whole: a backup, its size.

A backup is written under a temporary name and renamed into place only when complete, so a failed or
cancelled run leaves no file that looks like a backup; the temporary file of a run killed midway is removed by the
next backup, once no process holds it. PostgreSQL is dumped by ``pg_dump`` (custom format,
restorable with ``pg_restore``), its password passed in the environment, never on the command line, where
other local users could read it; SQLite is copied page by page through its online backup API
(:mod:`bot.db.repositories.backups`), which gives a consistent copy while the bot keeps writing.
"""

import asyncio
import contextlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.db.engine import Database, sqlite_file
from bot.db.repositories.backups import CopyFailed, copy_sqlite
from bot.db.repositories.system import SystemRepository
from bot.db.sole_process import flock_alone
from bot.db.types import utcnow
from bot.db.urls import URL
from bot.errors import HearthError

log = logging.getLogger(__name__)

# asyncpg's ``ssl`` query values that mean the same as libpq's ``sslmode``.
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
# libpq's TLS file options in the URL, and the environment variables pg_dump reads them from.
_TLS_FILES = {"sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY"}


class BackupError(HearthError):
    """A backup could not be made; the message says why, for the owner."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size_bytes: int
    seconds: float


def pg_dump_command(url: URL, pg_dump: str, target: Path) -> tuple[list[str], dict[str, str]]:
    """The ``pg_dump`` arguments and the environment for dumping ``url``'s database into ``target``.

    The host may be in the URL's host or, as asyncpg allows (a Unix socket folder), in its ``host`` query
    parameter. The password goes in ``PGPASSWORD``; ``--no-password`` stops pg_dump from ever prompting. The TLS
    mode and files go in libpq's ``PGSSL…`` variables, so pg_dump checks the server as Hearth does."""
    query = {key: value if isinstance(value, str) else value[-1] for key, value in url.query.items()}
    host = url.host or query.get("host")
    port = url.port or query.get("port")
    arguments = [pg_dump, "--format=custom", "--no-password", f"--file={target}"]
    if host:
        arguments.append(f"--host={host}")
    if port:
        arguments.append(f"--port={port}")
    if url.username:
        arguments.append(f"--username={url.username}")
    arguments.append(f"--dbname={url.database or 'postgres'}")
    environment = dict(os.environ)
    if url.password is not None:
        environment["PGPASSWORD"] = str(url.password)
    ssl = query.get("sslmode") or query.get("ssl")
    if ssl:
        ssl = ssl.lower()
        environment["PGSSLMODE"] = ssl if ssl in _SSL_MODES else ("require" if ssl in ("true", "1") else "disable")
    for option, variable in _TLS_FILES.items():  # the server's CA and the client certificate, as Hearth uses them
        if option in query:
            environment[variable] = query[option]
    return arguments, environment


_PARTIALS = (".db.partial", ".dump.partial")


def _hold(descriptor: int) -> bool:
    """Take the file open at ``descriptor`` for this backup alone, without waiting; False if a backup holds it.
    On Windows a file open elsewhere cannot be removed, which protects it as well."""
    return sys.platform == "win32" or flock_alone(descriptor)


def _still_at(path: Path, descriptor: int) -> bool:
    """Whether ``path`` still names the file open at ``descriptor`` (not removed, nor replaced, meanwhile)."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(descriptor))
    except OSError:
        return False


def _last_line(output: bytes) -> str:
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"


class Operations:
    def __init__(
        self,
        database: Database,
        *,
        backup_dir: Path,
        pg_dump: str = "pg_dump",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database = database
        self.backup_dir = backup_dir
        self.pg_dump = pg_dump
        self.clock = clock

    async def database_size(self) -> int:
        """Bytes the database takes (PostgreSQL: the whole database; SQLite: the main file)."""
        async with self.database.reading() as session:
            return await SystemRepository(session).database_size()

    async def backup(self) -> BackupResult:
        """Back the database up into ``backup_dir/hearth-YYYYmmdd-HHMMSS.dump`` (PostgreSQL, pg_dump's custom
        format) or ``.db`` (SQLite, a plain database file); raises :class:`BackupError`."""
        started = time.monotonic()
        postgresql = self.database.backend == "postgresql"
        source = None if postgresql else sqlite_file(self.database.url)
        if not postgresql and source is None:
            raise BackupError("the database is in memory: there is nothing on disk to back up")
        target, partial, held = self._reserve(".dump" if postgresql else ".db")
        try:
            await asyncio.to_thread(self._remove_abandoned, partial)
            if postgresql:
                await self._pg_dump(partial)
            else:
                assert source is not None
                await self._sqlite_backup(source, partial)
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            os.close(held)
        result = BackupResult(path=target, size_bytes=target.stat().st_size, seconds=time.monotonic() - started)
        log.info("backup written to %s (%d bytes in %.1f s)", target, result.size_bytes, result.seconds)
        return result

    def _reserve(self, suffix: str) -> tuple[Path, Path, int]:
        """A new file name in ``backup_dir`` (created if missing), stamped with the UTC time (``-2``, ``-3``, …
        after a backup in the same second), and its ``.partial`` file, created here so that two backups at once
        never pick the same name, with a descriptor that holds it as in use (close it when done)."""
        try:
            self.backup_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackupError(f"cannot create the backup folder {self.backup_dir}: {exc.strerror or exc}") from exc
        stem = f"hearth-{self.clock().astimezone(UTC).strftime('%Y%m%d-%H%M%S')}"
        for number in itertools.count(1):
            target = self.backup_dir / f"{stem}{'' if number == 1 else f'-{number}'}{suffix}"
            partial = target.with_name(target.name + ".partial")
            if target.exists():
                continue
            try:
                held = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                raise BackupError(f"cannot write in the backup folder {self.backup_dir}: {exc}") from exc
            if _hold(held) and _still_at(partial, held):
                return target, partial, held
            os.close(held)  # another backup took it for abandoned between its creation and the lock: a new one
        raise AssertionError("unreachable")

    def _remove_abandoned(self, own: Path) -> None:
        """Remove the ``.partial`` files of backups whose process is gone (killed midway: nothing else would, and
        each is as large as the database), never one that another backup, of this process or another, still
        writes: each is held while written, and the system lets go of it when its process ends."""
        for partial in self.backup_dir.glob("hearth-*.partial"):
            if partial == own or not partial.name.endswith(_PARTIALS):
                continue
            try:
                descriptor = os.open(partial, os.O_RDWR)
            except OSError:
                continue  # gone already, or not this process's to touch
            try:
                if _hold(descriptor) and _still_at(partial, descriptor):
                    partial.unlink()
                    log.info("removed %s, left by a backup that did not finish", partial)
            except OSError as exc:  # still open elsewhere (Windows) or not ours to remove: it stays
                log.debug("left %s in place: %s", partial, exc)
            finally:
                os.close(descriptor)

    async def _pg_dump(self, target: Path) -> None:
        arguments, environment = pg_dump_command(self.database.url, self.pg_dump, target)
        try:
            process = await asyncio.create_subprocess_exec(
                *arguments,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=environment,
            )
        except OSError as exc:
            raise BackupError(
                f"cannot run {self.pg_dump}: {exc.strerror or exc}; install the PostgreSQL client tools "
                "(pg_dump of the server's major version or newer) or set the path to pg_dump"
            ) from exc
        try:
            _, errors = await process.communicate()
        except BaseException:  # cancelled: do not leave pg_dump running
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            raise BackupError(f"pg_dump failed (exit code {process.returncode}): {_last_line(errors)}")

    async def _sqlite_backup(self, source: Path, target: Path) -> None:
        if not await asyncio.to_thread(source.is_file):
            raise BackupError(f"the SQLite database {source} does not exist")
        # In a thread, so the event loop keeps serving; the copy is one step (a copy made in several steps starts
        # over whenever the bot writes in between), so a cancelled backup waits for that step before cleaning up.
        copying = asyncio.ensure_future(asyncio.to_thread(copy_sqlite, source, target))
        try:
            await asyncio.shield(copying)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await copying
            raise
        except CopyFailed as exc:
            raise BackupError(f"cannot back up {source}: {exc}") from exc
