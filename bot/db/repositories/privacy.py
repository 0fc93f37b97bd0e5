"""Everything stored about one user, found by following the schema's foreign keys to ``users``.

Export reads it and erasure relies on it (deleting the user row cascades), so a table added later is covered
by both without a change here.
"""

from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Table, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Base, FactAssociation, User, UserFact

# Columns that hold vectors: derived from text that is exported anyway, and useless to a person.
_VECTOR_COLUMNS = {"embedding"}


def _plain(value: Any) -> Any:
    """A column value as JSON can hold it."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return None
    if hasattr(value, "tolist"):
        return None
    return value


def _user_columns(table: Table) -> list[Any]:
    return [column for column in table.columns if any(fk.column.table.name == "users" for fk in column.foreign_keys)]


class PrivacyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def rows_about(self, user_id: int) -> dict[str, list[dict[str, Any]]]:
        """Table name → the rows that reference the user (every column but vectors), and the user row itself."""
        found: dict[str, list[dict[str, Any]]] = {}
        for table in Base.metadata.sorted_tables:
            if table.name == User.__tablename__:
                condition = table.c.id == user_id
            elif columns := _user_columns(table):
                condition = or_(*(column == user_id for column in columns))
            else:
                continue
            rows = (await self.session.execute(select(table).where(condition).order_by(table.c.id))).mappings().all()
            if rows:
                found[table.name] = [
                    {key: _plain(value) for key, value in row.items() if key not in _VECTOR_COLUMNS} for row in rows
                ]
        fact_ids = select(UserFact.id).where(UserFact.user_id == user_id)
        links = (
            (
                await self.session.execute(
                    select(FactAssociation.__table__).where(
                        or_(FactAssociation.fact_id_1.in_(fact_ids), FactAssociation.fact_id_2.in_(fact_ids))
                    )
                )
            )
            .mappings()
            .all()
        )
        if links:
            found[FactAssociation.__tablename__] = [{k: _plain(v) for k, v in row.items()} for row in links]
        return found

    async def delete_fact(self, user_id: int, fact_id: int) -> str | None:
        """Delete one of the user's facts for good (its memory and associations go with it); its text, or None
        when the user has no such fact."""
        result = await self.session.execute(
            delete(UserFact).where(UserFact.id == fact_id, UserFact.user_id == user_id).returning(UserFact.fact_content)
        )
        content: str | None = result.scalar_one_or_none()
        return content

    async def facts(self, user_id: int, fact_ids: Sequence[int] | None = None) -> list[UserFact]:
        statement = select(UserFact).where(UserFact.user_id == user_id).order_by(UserFact.id)
        if fact_ids is not None:
            statement = statement.where(UserFact.id.in_(fact_ids))
        return list((await self.session.scalars(statement)).all())
