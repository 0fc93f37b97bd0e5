"""Personas: the characters Hearth plays."""

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Guild, Persona


class PersonaRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def default_for(self, guild_id: int | None) -> Persona | None:
        """The guild's default persona, else the global one."""
        statement = (
            select(Persona)
            .where(Persona.is_default.is_(True), (Persona.guild_id == guild_id) | Persona.guild_id.is_(None))
            # The guild's own first: NULL guild_id sorts last.
            .order_by(func.coalesce(Persona.guild_id, 0).desc())
            .limit(1)
        )
        return await self.session.scalar(statement)

    async def add(self, **fields: Any) -> Persona:
        persona = Persona(**fields)
        self.session.add(persona)
        await self.session.flush()
        return persona

    async def make_default(self, persona_id: int, guild_id: int | None) -> None:
        """``persona_id`` becomes the only default where ``guild_id`` points (None: global)."""
        scope = Persona.guild_id.is_(None) if guild_id is None else Persona.guild_id == guild_id
        await self.session.execute(update(Persona).where(scope, Persona.id != persona_id).values(is_default=False))
        await self.session.execute(update(Persona).where(Persona.id == persona_id).values(is_default=True))

    async def lock_guild(self, guild_id: int) -> None:
        """Hold the guild's row until the transaction ends, so two changes to its personas run one after the
        other (PostgreSQL; SQLite runs writers one at a time anyway). Raises LookupError for an unknown guild."""
        if await self.session.scalar(select(Guild.id).where(Guild.id == guild_id).with_for_update()) is None:
            raise LookupError(f"no guild with id {guild_id}")

    async def get(self, persona_id: int) -> Persona | None:
        return await self.session.get(Persona, persona_id)

    async def usable_in(self, guild_id: int) -> list[Persona]:
        """The personas a guild may use: its own first, then the global ones; each group by id."""
        statement = (
            select(Persona)
            .where((Persona.guild_id == guild_id) | Persona.guild_id.is_(None))
            .order_by(func.coalesce(Persona.guild_id, 0).desc(), Persona.id)
        )
        return list((await self.session.scalars(statement)).all())

    async def count_owned_by(self, guild_id: int) -> int:
        statement = select(func.count()).select_from(Persona).where(Persona.guild_id == guild_id)
        return int(await self.session.scalar(statement) or 0)

    async def clear_default(self, guild_id: int) -> None:
        """The guild has no default of its own any more, so the global default speaks there."""
        await self.session.execute(
            update(Persona).where(Persona.guild_id == guild_id, Persona.is_default.is_(True)).values(is_default=False)
        )

    async def delete(self, persona_id: int) -> None:
        await self.session.execute(delete(Persona).where(Persona.id == persona_id))
