"""Making two PostgreSQL transactions meet: wait until others stand blocked on the row locks one holds."""

import asyncio

from sqlalchemy import text

from bot.db.engine import Database

_WAITING = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")


async def waiting_for_row_locks(database: Database, connections: int = 1) -> None:
    """Wait until ``connections`` connections to ``database`` wait for row locks other transactions hold."""
    async with asyncio.timeout(10):
        while True:
            async with database.reading() as session:
                if (await session.scalar(_WAITING) or 0) >= connections:
                    return
            await asyncio.sleep(0.02)
