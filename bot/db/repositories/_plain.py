"""Statements on every reply's path, run without the ORM's per-statement work."""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Executable, Result
from sqlalchemy.ext.asyncio import AsyncSession


async def execute_plain(
    session: AsyncSession, statement: Executable, parameters: Mapping[str, Any]
) -> Result[*tuple[Any, ...]]:
    """Run ``statement`` on the session's connection, inside its transaction if it has one.

    For statements that load no ORM objects, built once with bound parameters: the ORM's bookkeeping (loading
    into objects, synchronising the identity map after an UPDATE) is skipped, SQLAlchemy's compiled cache still
    applies. Through ``session.execute`` the same reads cost the event loop several times what PostgreSQL
    spends on them.
    """
    connection = await session.connection()
    return await connection.execute(statement, parameters)
