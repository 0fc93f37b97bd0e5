"""Personas: the characters Hearth plays."""

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Persona


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
