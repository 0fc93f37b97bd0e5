"""Composition root: builds every long-lived dependency once and hands it out."""

from dataclasses import dataclass

from bot.db import migrations
from bot.db.engine import Database
from bot.settings import Settings


@dataclass(slots=True)
class Container:
    settings: Settings
    database: Database

    @classmethod
    async def create(cls, settings: Settings, *, migrate: bool = True) -> "Container":
        """Connect to the database (clear error if unreachable) and bring its schema to head."""
        database = Database(settings.database_url, echo=settings.database_echo, pool_size=settings.database_pool_size)
        try:
            await database.check()
            if migrate:
                await migrations.upgrade(database, embedding_dimension=settings.embedding_dimension)
        except BaseException:
            await database.dispose()
            raise
        return cls(settings=settings, database=database)

    async def aclose(self) -> None:
        await self.database.dispose()
