"""Engine and session factory, and the one place that turns connection failures into clear errors."""

import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from bot.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

# How long a SQLite writer waits for another writer before giving up (milliseconds).
_SQLITE_BUSY_TIMEOUT_MS = 10_000


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite set-up: enforce foreign keys (for cascades), WAL for concurrent readers."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _on_postgresql_connect(dbapi_connection: Any, _record: Any) -> None:
    """Filtered HNSW scans keep searching until enough rows pass the scope filter (pgvector 0.8): set once
    per connection rather than once per recall (a SET, not a startup parameter, so poolers accept it)."""
    # On the raw asyncpg connection, outside any transaction, so a later rollback does not undo it.
    dbapi_connection.run_async(lambda connection: connection.execute("SET hnsw.iterative_scan = relaxed_order"))


def ensure_sqlite_folder(url: URL) -> None:
    """Create the folder of a SQLite file so a fresh checkout needs no manual step."""
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(str(url.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str | URL, *, echo: bool = False, pool_size: int = 5) -> AsyncEngine:
    """Build the async engine for a PostgreSQL (asyncpg) or SQLite (aiosqlite) URL."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite":
        ensure_sqlite_folder(url)
        # One connection per checkout is cheap for SQLite, and NullPool lets files be removed in tests.
        engine = create_async_engine(url, echo=echo, poolclass=NullPool)
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        return engine
    # No pre-ping (a round trip on every checkout, on every reply's path): a dropped connection fails one
    # statement, which the services retry; recycling keeps connections from going stale behind a proxy.
    engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size * 2, pool_recycle=1800)
    event.listen(engine.sync_engine, "connect", _on_postgresql_connect)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (lazy reloads do not work under asyncio)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def describe_failure(url: URL, exc: BaseException) -> str:
    """One line that names the database (password hidden) and what went wrong."""
    where = url.render_as_string(hide_password=True)
    cause: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        cause = exc.orig
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return f"cannot use the database at {where}: {reason}"


_CONNECT_ERRORS = (OSError, OperationalError, InterfaceError, DBAPIError, sqlite3.Error, TimeoutError)


class Database:
    """The engine and its session factory; owned by the launcher and passed to services."""

    def __init__(self, url: str | URL, *, echo: bool = False, pool_size: int = 5) -> None:
        self.url = make_url(url)
        self.engine = create_engine(self.url, echo=echo, pool_size=pool_size)
        self.sessions = session_factory(self.engine)

    @property
    def backend(self) -> str:
        """``"postgresql"`` or ``"sqlite"``."""
        return self.url.get_backend_name()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits on success, rolls back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def check(self) -> None:
        """Connect once, raising :class:`DatabaseUnavailable` with a readable reason on failure."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except _CONNECT_ERRORS as exc:
            raise DatabaseUnavailable(describe_failure(self.url, exc)) from exc

    async def dispose(self) -> None:
        await self.engine.dispose()
