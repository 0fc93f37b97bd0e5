"""What every bot process on one database must agree on: runtime flags, and news of shared changes.

A change another process caches (guild settings, personas) or obeys (maintenance mode) is announced in the
transaction that makes it: on PostgreSQL ``pg_notify`` is delivered when, and only if, that transaction
commits, to every process listening (see :mod:`bot.db.changes`). SQLite serves one process, which already
knows what it changed, so announcing is a no-op there.
"""

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.changes import CHANNEL, Change
from bot.db.models import RuntimeFlag
from bot.db.repositories._dialect import dialect_name, insert_for
from bot.db.types import utcnow

MAINTENANCE = "maintenance"


class RuntimeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def flag(self, name: str) -> bool:
        """Whether the flag is on (a flag never set is off)."""
        return bool(await self.session.scalar(select(RuntimeFlag.enabled).where(RuntimeFlag.name == name)))

    async def set_flag(self, name: str, enabled: bool) -> None:
        insert = insert_for(self.session, RuntimeFlag)
        await self.session.execute(
            insert.values(name=name, enabled=enabled, updated_at=utcnow()).on_conflict_do_update(
                index_elements=[RuntimeFlag.name],
                set_={"enabled": insert.excluded.enabled, "updated_at": insert.excluded.updated_at},
            )
        )

    async def announce(self, change: Change) -> None:
        """Tell the other processes of ``change`` when this transaction commits (PostgreSQL only)."""
        if dialect_name(self.session) != "postgresql":
            return
        await self.session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": change.payload()}
        )
