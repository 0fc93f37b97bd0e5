"""Database URLs: DATABASE_URL parsed, and pinned to the async driver Hearth uses for its backend."""

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["URL", "make_url", "normalise_database_url"]

# Drivers Hearth speaks, and the spellings users commonly paste that mean the same thing.
_DRIVER_ALIASES = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def normalise_database_url(raw: str) -> URL:
    """Parse a DATABASE_URL and pin it to the async driver Hearth uses for that backend."""
    try:
        url = make_url(raw.strip())
    except ValueError:  # make_url's int() of the port
        raise ValueError("the port in the URL is not a whole number (e.g. …@localhost:5432/hearth)") from None
    except ArgumentError:
        raise ValueError(
            "not a database URL; expected e.g. sqlite+aiosqlite:///./data/hearth.db "
            "or postgresql+asyncpg://user:password@host:5432/hearth"
        ) from None
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ValueError(f"the port in the URL must lie in 1..65535, not {url.port}")
    driver = _DRIVER_ALIASES.get(url.drivername)
    if driver is None:
        raise ValueError(f"unsupported database driver {url.drivername!r}; use sqlite+aiosqlite or postgresql+asyncpg")
    url = url.set(drivername=driver)
    if driver.startswith("sqlite") and not url.database:
        # SQLite takes no file name for a database in memory: everything would be gone at the next start.
        raise ValueError(
            "the SQLite URL names no file (e.g. sqlite+aiosqlite:///./data/hearth.db); write :memory: as the file "
            "for a database that is lost at every stop"
        )
    if driver.startswith("sqlite") and (url.database or "").startswith("~"):
        # SQLite opens "~/hearth.db" as a folder named ~ in the working folder, which does not exist.
        url = url.set(database=str(Path(url.database or "").expanduser()))
    if driver.startswith("postgresql"):
        if not url.database:
            raise ValueError("the PostgreSQL URL names no database (…/DBNAME at the end)")
        url = _asyncpg_options(url)
    return url


# The query options asyncpg takes from a URL (SQLAlchemy passes each to ``asyncpg.connect`` as a string).
_ASYNCPG_OPTIONS = (
    "host",
    "port",
    "ssl",
    "passfile",
    "target_session_attrs",
    "krbsrvname",
    "gsslib",
    "prepared_statement_cache_size",
)


def _asyncpg_options(url: URL) -> URL:
    """libpq's ``sslmode`` (in the URLs hosted PostgreSQL hands out) as asyncpg's ``ssl``, which takes the same
    values; any other option asyncpg does not take is an error naming it, rather than a TypeError on connect."""
    if "sslmode" in url.query:
        sslmode = url.query["sslmode"]
        url = url.difference_update_query(["sslmode"])
        if "ssl" not in url.query:
            url = url.update_query_dict({"ssl": sslmode})
    unknown = [name for name in url.query if name not in _ASYNCPG_OPTIONS]
    if unknown:
        raise ValueError(
            f"the PostgreSQL driver (asyncpg) takes no option {unknown[0]!r}: remove it from the URL "
            f"(it takes sslmode and {', '.join(_ASYNCPG_OPTIONS)})"
        )
    return url
