"""What every bot process on one database must agree on: runtime flags, and news of shared changes.

A change another process caches (guild settings, personas) or obeys (maintenance mode) is announced in the
transaction that makes it: on PostgreSQL ``pg_notify`` is delivered when, and only if, that transaction
commits, to every process listening (see :mod:`bot.db.changes`). SQLite serves one process, which already
knows what it changed, so announcing is a no-op there.

Work that one process must do while the others leave it alone (a summary) is held with a PostgreSQL advisory
lock of the session's connection: released when the work is done, or with the connection if the process dies.
Work that two processes must not do at once (a day's token roll-up) waits for a lock held until the transaction
doing it ends.
"""

from typing import Literal

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.changes import CHANNEL, Change
from bot.db.models import RuntimeFlag
from bot.db.repositories._dialect import dialect_name, insert_for
from bot.db.types import utcnow

MAINTENANCE = "maintenance"

# Each kind of work held across processes has its own range of advisory lock keys (row ids stay below 2**56).
LockKind = Literal["summary", "token-roll-up"]
_LOCK_RANGES: dict[LockKind, int] = {"summary": 1 << 56, "token-roll-up": 2 << 56}


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

    async def try_hold(self, kind: LockKind, key: int) -> bool:
        """Take the advisory lock on ``kind`` ``key`` (a row id) for this session's connection, unless another
        connection holds it: True when taken (always on SQLite, which serves one process). Use it in a session
        outside a transaction (``Database.reading``), and :meth:`release` it there."""
        if dialect_name(self.session) != "postgresql":
            return True
        return bool(await self.session.scalar(select(func.pg_try_advisory_lock(_LOCK_RANGES[kind] + key))))

    async def release(self, kind: LockKind, key: int) -> None:
        """Let go of a lock taken with :meth:`try_hold`."""
        if dialect_name(self.session) == "postgresql":
            await self.session.execute(select(func.pg_advisory_unlock(_LOCK_RANGES[kind] + key)))

    async def hold_until_commit(self, kind: LockKind, key: int) -> None:
        """Wait for, and take, the advisory lock on ``kind`` ``key`` until this transaction ends: the same work in
        another process waits for this one's to be committed (PostgreSQL; SQLite serves one process)."""
        if dialect_name(self.session) == "postgresql":
            await self.session.execute(select(func.pg_advisory_xact_lock(_LOCK_RANGES[kind] + key)))
