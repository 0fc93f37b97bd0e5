"""A database on either backend, migrated only up to an older revision: for tests of what a migration does
to the rows it finds."""

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.engine import URL

from bot.db import migrations
from bot.db.engine import Database
from tests.conftest import EMBEDDING_DIMENSION
from tests.support.postgres import create_database


@contextlib.asynccontextmanager
async def database_at(backend: str, revision: str, *, tmp_path: Path, server_url: URL) -> AsyncIterator[Database]:
    """A fresh SQLite file or PostgreSQL database at ``revision``; disposed of afterwards."""
    if backend == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    else:
        database = Database(await create_database(server_url, f"hearth_{revision}_{uuid.uuid4().hex[:8]}"))
    try:
        await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION, revision=revision)
        yield database
    finally:
        await database.dispose()
