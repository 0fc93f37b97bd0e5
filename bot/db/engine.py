"""Engine and session factory, and the one place that turns connection failures into clear errors."""

import asyncio
import contextlib
import contextvars
import logging
import os
import sqlite3
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from bot.db.types import vector_from_postgresql, vector_to_postgresql
from bot.db.urls import postgresql_connect_args
from bot.errors import DatabaseUnavailable, describe_connection_error

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# How long a SQLite writer waits for another writer before giving up (milliseconds).
_SQLITE_BUSY_TIMEOUT_MS = 10_000


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite set-up: enforce foreign keys (for cascades), WAL for concurrent readers, and zero
    what a delete frees, so erased text does not linger in free pages (some builds default it off)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA secure_delete = ON")
    cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


# How many candidates an HNSW search keeps (pgvector's default is 40). The index is one graph over every scope,
# filtered as it is walked; with the default, a guild holding a quarter of 200k memories got 0.77 of its exact 50
# nearest (bench/retrieval_scale.py), with 400 (and the index built with ef_construction 200, revision 0012) 0.96.
HNSW_EF_SEARCH = 400

# Set once per connection (SETs, not startup parameters, so poolers accept them), rather than with SET LOCAL in a
# transaction around each vector search: recall reads outside transactions, and BEGIN, SET LOCAL and COMMIT
# around the search made it 40% slower (three more round trips):
# - filtered HNSW scans keep searching until enough rows pass the scope filter (pgvector 0.8), from a wider
#   candidate list than pgvector's default;
# - every statement is planned for its own values: asyncpg prepares statements, and after five runs PostgreSQL
#   may switch to one generic plan, blind to the query vector or the words searched for (twice as slow here);
# - a page read at random costs little more than one read in order (PostgreSQL's advice for SSDs and for data
#   that stays in memory): at the default (4) the word search read every memory of a guild of a few thousand
#   rather than its index, 20 ms instead of 3 (memories are wide: each holds its vector).
POSTGRESQL_SESSION_SETTINGS = (
    f"SET hnsw.iterative_scan = relaxed_order; SET hnsw.ef_search = {HNSW_EF_SEARCH}; "
    "SET plan_cache_mode = force_custom_plan; SET random_page_cost = 1.1"
)


# What a database that is restarting, unreachable or dropping connections raises. SQLAlchemy wraps what a
# statement raises, but not always what connecting raises: a missing socket is a bare FileNotFoundError, a
# server still starting up asyncpg's CannotConnectNowError.
DATABASE_FAULTS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    OSError,
    TimeoutError,
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # A connection killed in the middle of an operation can leave asyncpg's protocol in a state it reports this
    # way ("cannot switch to state …"); like a dropped connection, the next try gets a fresh one.
    asyncpg.InternalClientError,
)
# Of those, the database refusing a row (a constraint, a value it cannot take): retrying the same row is futile.
DATABASE_REFUSALS: tuple[type[BaseException], ...] = (IntegrityError, DataError)

# asyncpg errors that mean the connection (or the server behind it) is gone, not that the statement was wrong.
_GONE = (
    asyncpg.ConnectionDoesNotExistError,  # closed in the middle of an operation
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,  # pg_terminate_backend, or a fast shutdown
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    OSError,
)


def _is_gone(error: BaseException | None) -> bool:
    if isinstance(error, asyncpg.InterfaceError):
        return "closed" in str(error)  # "connection is closed", not a misuse such as overlapping operations
    return isinstance(error, _GONE)


def fault_kind(exc: BaseException) -> str:
    """ "connection" for a database that cannot be reached or a connection lost; else the error's class name."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "connection"
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    if _is_gone(original) or _is_gone(original.__cause__) or isinstance(original, TimeoutError):
        return "connection"
    return type(exc).__name__


def _on_postgresql_error(context: ExceptionContext) -> None:
    """Treat a dead connection as a disconnect, whatever SQLAlchemy's asyncpg dialect makes of it.

    The dialect asks asyncpg whether the connection is closed, which it may not know yet right after the
    server said goodbye; the connection would go back to the pool and fail the next statement too. A
    disconnect makes SQLAlchemy drop this connection and every other one pooled before it, so after a restart
    one statement fails rather than one per pooled connection, and the next checkout connects afresh."""
    original = context.original_exception
    if _is_gone(original) or _is_gone(original.__cause__):
        context.is_disconnect = True


def _on_postgresql_connect(dbapi_connection: Any, _record: Any) -> None:
    # On the raw asyncpg connection, outside any transaction, so a later rollback does not undo it.
    dbapi_connection.run_async(_prepare_postgresql_connection)


async def _prepare_postgresql_connection(connection: asyncpg.Connection) -> None:
    """The session settings, and pgvector's binary form for vectors (see ``bot.db.types``), in whichever
    schema the extension was installed. A database the migrations have not reached yet has no vector type:
    :func:`bot.db.migrations.upgrade` drops its connections once it has made one."""
    await connection.execute(POSTGRESQL_SESSION_SETTINGS)
    schema = await connection.fetchval(_VECTOR_SCHEMA)
    if schema is not None:
        await connection.set_type_codec(
            "vector", schema=schema, encoder=vector_to_postgresql, decoder=vector_from_postgresql, format="binary"
        )


_VECTOR_SCHEMA = (
    "SELECT n.nspname FROM pg_type AS t JOIN pg_namespace AS n ON n.oid = t.typnamespace "
    "WHERE t.typname = 'vector' ORDER BY n.nspname = 'public' DESC LIMIT 1"
)


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database (or a URL of another backend)."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):  # a URI filename (``?uri=true``)
        database = database.removeprefix("file:").split("?", 1)[0]
        if database in ("", ":memory:"):
            return None
    return Path(database).expanduser()


def sqlite_file_to_come(url: URL) -> Path | None:
    """The file of a SQLite URL when it is not there yet (the first start makes it and its folder); None when it
    is, or the database is not a SQLite file. Looking at it this way writes nothing."""
    path = sqlite_file(url)
    return path if path is not None and not path.exists() else None


def ensure_sqlite_folder(url: URL) -> None:
    """Create the folder of a SQLite file so a fresh checkout needs no manual step; raise
    :class:`DatabaseUnavailable` saying what is in the way if it cannot be made."""
    path = sqlite_file(url)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "a file is in the way" if isinstance(exc, FileExistsError) else (exc.strerror or str(exc))
        raise DatabaseUnavailable(
            f"cannot create the folder {path.parent} for the SQLite database ({reason}): create it where the bot "
            "may write, or set DATABASE_URL to a file in such a folder"
        ) from exc


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
    # statement, which the services retry, and empties the pool (see _on_postgresql_error); recycling keeps
    # connections from going stale behind a proxy. Up to three times ``pool_size`` connections, opened as they are
    # needed and then kept: as overflow beyond ``pool_size`` they were closed as soon as they were returned, and
    # under load the pool opened about two a second, each a new server process that learns the types and plans
    # every statement afresh.
    url, connect_args = _postgresql_connect_args(url)
    engine = create_async_engine(
        url, echo=echo, pool_size=pool_size * 3, max_overflow=0, pool_recycle=1800, connect_args=connect_args
    )
    event.listen(engine.sync_engine, "connect", _on_postgresql_connect)
    event.listen(engine.sync_engine, "handle_error", _on_postgresql_error)
    return engine


def _postgresql_connect_args(url: URL) -> tuple[URL, dict[str, Any]]:
    """:func:`bot.db.urls.postgresql_connect_args`, a file it cannot read being :class:`DatabaseUnavailable`."""
    try:
        return postgresql_connect_args(url)
    except ValueError as exc:
        raise DatabaseUnavailable(f"cannot use the database at {url.render_as_string()}: {exc}") from None


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (lazy reloads do not work under asyncio)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def describe_failure(url: URL, exc: BaseException) -> str:
    """One line that names the database (password hidden) and what went wrong."""
    where = url.render_as_string(hide_password=True)
    cause: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        cause = exc.orig
    if isinstance(cause, ssl.SSLCertVerificationError):  # which check failed: the CA, the host name, the dates
        why = (cause.verify_message or str(cause.reason)).rstrip(".")
        reason = f"TLS failed: the server's certificate was refused ({why})"
    elif isinstance(cause, OSError | TimeoutError):  # refused, host not found, timed out: say which, plainly
        reason = describe_connection_error(cause)
    else:
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    path = sqlite_file(url)
    code = getattr(cause, "sqlite_errorcode", 0) & 0xFF
    if path is not None and code in _SQLITE_NO_WRITE:
        reason += _unwritable(path)
    elif path is not None and code == _SQLITE_CORRUPT:
        reason += _damaged(path)
    elif path is not None and code == _SQLITE_NOTADB:
        # SQLite would replay a journal left beside the file into whatever takes its place.
        reason += (
            f" ({path} is not a SQLite database): move it away (with {path}-wal and {path}-shm, if there), then put a "
            "backup in its place or let the next start make a new one"
        )
    return f"cannot use the database at {where}: {reason}"


_SQLITE_NO_WRITE = (3, 8, 14)  # SQLite's primary result codes PERM, READONLY and CANTOPEN
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


def _damaged(path: Path) -> str:
    """What to do with a SQLite file whose pages are damaged: most of it can often still be read (``.recover``, from
    the file with its journal beside it, which SQLite would replay into whatever took its place), else a backup."""
    recovered = path.with_name("recovered.db")
    return (
        f" ({path} is damaged): save what can still be read with `sqlite3 {path} .recover | sqlite3 {recovered}`, "
        f"then move it away (with {path}-wal and {path}-shm, if there) and put the recovered file, or the latest "
        "backup (`/owner backup` writes them into BACKUP_DIR), in its place"
    )


def describe_sqlite_damage(url: URL, finding: str) -> str:
    """The line for a SQLite file in which ``quick_check`` found ``finding``, as for a query that failed on it."""
    path = sqlite_file(url)
    advice = _damaged(path) if path is not None else ""
    return f"cannot use the database at {url.render_as_string(hide_password=True)}: quick_check found {finding}{advice}"


def damaged_sqlite(url: URL, exc: BaseException) -> DatabaseUnavailable | None:
    """A query that failed on a SQLite file that is damaged, or no database (SQLite opens such a file, and says so
    only when a statement reads the pages in question), as the one line saying which file and what to do; None for
    any other failure."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    code = getattr(cause, "sqlite_errorcode", 0) & 0xFF
    if sqlite_file(url) is None or code not in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return None
    return DatabaseUnavailable(describe_failure(url, exc))


def _open_sqlite(url: URL) -> None:
    """Open a SQLite file as Hearth does, its journal beside it, and write a header field (its own value, rolled
    back), with the sqlite3 module in the calling thread. A file the bot may only read opens, and
    would fail only at its first write, in the middle of a migration; a folder it may not write fails to open,
    and aiosqlite leaves a thread behind that failure which prints a traceback when the process ends first."""
    if sqlite_file(url) is None or url.database is None:
        return
    connection = sqlite3.connect(url.database, uri=url.query.get("uri") == "true", isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(f"PRAGMA user_version = {version}")
        finally:
            connection.execute("ROLLBACK")
    finally:
        connection.close()


def _unwritable(path: Path) -> str:
    """What to do when SQLite may not write ``path``: which of the file and its folder this user may not write
    (SQLite writes its journal beside the file), or nothing when neither is the reason."""
    folder = path.parent
    if path.exists() and not os.access(path, os.W_OK):
        return f" (this user may not write the file {path}): let it, or set DATABASE_URL to a file it may write"
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return (
            f" (this user may not write in the folder {folder}, where SQLite keeps its journal beside the file): "
            "let it, or set DATABASE_URL to a file in a folder it may write"
        )
    return ""


# The faults of a first try in Database.once_more_if_dropped, held back from the metrics until it is known whether
# it is made again.
_HELD_FAULTS: contextvars.ContextVar[list[tuple["Database", BaseException]] | None] = contextvars.ContextVar(
    "hearth_held_database_faults", default=None
)

_CONNECT_ERRORS = (OSError, OperationalError, InterfaceError, DBAPIError, sqlite3.Error, TimeoutError)


class Database:
    """The engine and its session factory; owned by the launcher and passed to services."""

    def __init__(self, url: str | URL, *, echo: bool = False, pool_size: int = 5) -> None:
        self.url = make_url(url)
        self.engine = create_engine(self.url, echo=echo, pool_size=pool_size)
        self.sessions = session_factory(self.engine)
        self._on_error: Callable[[str], None] | None = None

    def connect_options(self) -> dict[str, Any]:
        """The arguments of ``asyncpg.connect`` for a PostgreSQL connection of its own, outside the pool, made as
        the pool makes its connections (the TLS context included)."""
        url, connect_args = _postgresql_connect_args(self.url)
        _, options = self.engine.dialect.create_connect_args(url)
        return {**options, **connect_args}

    @property
    def backend(self) -> str:
        """``"postgresql"`` or ``"sqlite"``."""
        return self.url.get_backend_name()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits on success, rolls back on error."""
        try:
            async with self.sessions() as session, session.begin():
                yield session
        except DATABASE_FAULTS as exc:
            self._failed(exc)
            raise

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only, outside any transaction: each statement is one round trip, with no BEGIN
        and COMMIT around it (what a reply's memory searches use). Writes in it would commit at once."""
        try:
            async with self.engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                async with self.sessions(bind=autocommit) as session:
                    yield session
        except DATABASE_FAULTS as exc:
            self._failed(exc)
            raise

    @contextlib.asynccontextmanager
    async def one_statement_each(self) -> AsyncIterator[AsyncSession]:
        """A session in which each statement commits on its own (autocommit): for a change that is a single
        statement, atomic by itself, without the BEGIN and COMMIT round trips of :meth:`session`."""
        async with self.reading() as session:
            yield session

    async def check(self, *, writable: bool = False) -> None:
        """Run ``SELECT 1``, raising :class:`DatabaseUnavailable` with a readable reason on failure; ``writable``
        (at start-up, before migrating): a SQLite file must also take a write (see :func:`_open_sqlite`). Made
        once more when a pooled connection the server dropped fails it (see :meth:`once_more_if_dropped`)."""

        async def select_one() -> None:
            if writable and self.backend == "sqlite":
                await asyncio.to_thread(_open_sqlite, self.url)
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        try:
            await self.once_more_if_dropped(select_one)
        except _CONNECT_ERRORS as exc:
            self._failed(exc)
            raise DatabaseUnavailable(describe_failure(self.url, exc)) from exc

    async def once_more_if_dropped(self, work: Callable[[], Awaitable[_T]]) -> _T:
        """``work()``, made once more when it failed on a pooled connection the server dropped (it restarted).

        That failure says nothing about the database, and it emptied the pool (see _on_postgresql_error): the
        second try connects afresh. For reads asked for now, such as a health check or a scrape, that would
        otherwise fail once after every restart. (Not a pre-ping on every checkout: that is a round trip more on
        every reply's path.)"""
        held: list[tuple[Database, BaseException]] = []
        holding = _HELD_FAULTS.set(held)
        retried: BaseException | None = None
        try:
            return await work()
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            retried = exc
        finally:
            _HELD_FAULTS.reset(holding)
            for database, fault in held:  # counted unless it is the one tried again: it says nothing of the database
                if fault is not retried:
                    database._count(fault)
        return await work()

    def on_error(self, callback: Callable[[str], None]) -> None:
        """Call ``callback`` with the kind of each database fault that ends a unit of work (:meth:`session`,
        :meth:`reading`, :meth:`check`): "connection" when the database could not be reached or the connection
        was lost, else the error's class name; not a dropped connection that :meth:`once_more_if_dropped` gets past
        by trying again. For the metrics; the error itself propagates as before."""
        self._on_error = callback

    def _failed(self, exc: BaseException) -> None:
        held = _HELD_FAULTS.get()
        if held is not None:  # in a first try of once_more_if_dropped: counted once it is known not to be retried
            held.append((self, exc))
        else:
            self._count(exc)

    def _count(self, exc: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(fault_kind(exc))

    async def dispose(self) -> None:
        await self.engine.dispose()
