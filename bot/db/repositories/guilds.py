"""Guilds and their members."""

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Guild, GuildMember
from bot.db.repositories._dialect import insert_for
from bot.db.types import utcnow


class GuildRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, *, discord_id: int, name: str) -> Guild:
        """Insert the guild or refresh its name (and mark it active again)."""
        insert = insert_for(self.session, Guild)
        statement = (
            insert.values(discord_id=discord_id, name=name)
            .on_conflict_do_update(
                index_elements=[Guild.discord_id],
                set_={
                    "name": insert.excluded.name,
                    "is_active": True,
                    "updated_at": insert.excluded.updated_at,
                },
            )
            .returning(Guild)
        )
        result = await self.session.execute(statement, execution_options={"populate_existing": True})
        row: Guild = result.scalar_one()
        return row

    async def get_by_discord_id(self, discord_id: int) -> Guild | None:
        return await self.session.scalar(select(Guild).where(Guild.discord_id == discord_id))

    async def settings_of(self, guild_id: int) -> dict[str, Any]:
        """The guild's settings ({} for an unknown guild)."""
        return dict(await self.session.scalar(select(Guild.settings).where(Guild.id == guild_id)) or {})

    async def update_settings(self, guild_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge ``changes`` into the guild's settings (a key set to None is removed); returns the result."""
        current = await self.session.scalar(select(Guild.settings).where(Guild.id == guild_id).with_for_update())
        if current is None:
            raise LookupError(f"no guild with id {guild_id}")
        merged = {**current, **changes}
        merged = {key: value for key, value in merged.items() if value is not None}
        await self.session.execute(
            update(Guild).where(Guild.id == guild_id).values(settings=merged, updated_at=utcnow())
        )
        return merged

    async def upsert_member(
        self,
        *,
        guild_id: int,
        user_id: int,
        nickname: str | None,
        roles: list[str],
        joined_at: datetime | None,
    ) -> GuildMember:
        insert = insert_for(self.session, GuildMember)
        statement = (
            insert.values(
                guild_id=guild_id,
                user_id=user_id,
                guild_nickname=nickname,
                roles=roles,
                joined_guild_at=joined_at,
            )
            .on_conflict_do_update(
                index_elements=[GuildMember.guild_id, GuildMember.user_id],
                set_={
                    "guild_nickname": insert.excluded.guild_nickname,
                    "roles": insert.excluded.roles,
                    "updated_at": insert.excluded.updated_at,
                },
            )
            .returning(GuildMember)
        )
        result = await self.session.execute(statement, execution_options={"populate_existing": True})
        row: GuildMember = result.scalar_one()
        return row
