"""Database URLs: DATABASE_URL parsed, and pinned to the async driver Hearth uses for its backend."""

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
    driver = _DRIVER_ALIASES.get(url.drivername)
    if driver is None:
        raise ValueError(f"unsupported database driver {url.drivername!r}; use sqlite+aiosqlite or postgresql+asyncpg")
    url = url.set(drivername=driver)
    if driver.startswith("postgresql") and not url.database:
        raise ValueError("the PostgreSQL URL names no database (…/DBNAME at the end)")
    return url
