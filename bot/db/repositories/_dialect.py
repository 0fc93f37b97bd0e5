"""Statements whose spelling differs between PostgreSQL and SQLite."""

from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports ``on_conflict_do_update`` / ``on_conflict_do_nothing`` on either backend.

    Both dialects' ``Insert`` share that API (and ``.excluded``), so callers write one statement.
    """
    if dialect_name(session) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def dialect_name(session: AsyncSession) -> str:
    """``"postgresql"`` or ``"sqlite"``."""
    return session.get_bind().dialect.name


def greatest(session: AsyncSession, *values: Any) -> Any:
    """SQL's larger-of: ``greatest()`` on PostgreSQL, the scalar ``max()`` on SQLite."""
    if dialect_name(session) == "postgresql":
        return func.greatest(*values)
    return func.max(*values)
