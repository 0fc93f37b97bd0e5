"""Users and their preferences."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User, UserPreferences
from bot.db.repositories._dialect import insert_for


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, *, discord_id: int, username: str, display_name: str | None, seen_at: datetime) -> User:
        """Insert the user or refresh their names and ``last_seen_at``; one round trip either way."""
        insert = insert_for(self.session, User)
        statement = (
            insert.values(
                discord_id=discord_id,
                discord_username=username,
                discord_display_name=display_name,
                first_seen_at=seen_at,
                last_seen_at=seen_at,
            )
            .on_conflict_do_update(
                index_elements=[User.discord_id],
                set_={
                    "discord_username": insert.excluded.discord_username,
                    "discord_display_name": insert.excluded.discord_display_name,
                    "last_seen_at": insert.excluded.last_seen_at,
                    "updated_at": insert.excluded.updated_at,
                },
            )
            .returning(User)
        )
        result = await self.session.execute(statement, execution_options={"populate_existing": True})
        row: User = result.scalar_one()
        return row

    async def get(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_discord_id(self, discord_id: int) -> User | None:
        return await self.session.scalar(select(User).where(User.discord_id == discord_id))

    async def delete(self, user_id: int) -> bool:
        """Erase the user; foreign keys cascade to every row about them. True if they existed."""
        result = await self.session.execute(delete(User).where(User.id == user_id).returning(User.id))
        return result.scalar_one_or_none() is not None

    async def preferences(self, user_id: int) -> UserPreferences:
        """The user's preferences, created with defaults on first use."""
        insert = insert_for(self.session, UserPreferences)
        await self.session.execute(
            insert.values(user_id=user_id).on_conflict_do_nothing(index_elements=[UserPreferences.user_id])
        )
        preferences = await self.session.scalar(select(UserPreferences).where(UserPreferences.user_id == user_id))
        assert preferences is not None  # inserted just above
        return preferences

    async def people(self, user_ids: Sequence[int]) -> dict[int, tuple[User, UserPreferences | None]]:
        """Users with their preferences (None where they never set any), in one query."""
        if not user_ids:
            return {}
        statement = (
            select(User, UserPreferences)
            .outerjoin(UserPreferences, UserPreferences.user_id == User.id)
            .where(User.id.in_(set(user_ids)))
        )
        return {user.id: (user, preferences) for user, preferences in (await self.session.execute(statement)).all()}
