"""Personas: the characters Hearth plays."""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import ChannelCast, ChannelPersona, Persona

# A write that changes nothing: it makes SQLite take its write lock (Python 3.11's sqlite3 only begins a
# transaction at the first write, so a leading SELECT … FOR UPDATE would lock nothing there), and on PostgreSQL
# it locks the row. Raw SQL, so the ORM's ``updated_at`` stamp is left alone.
_LOCK_GUILD = text("UPDATE guilds SET id = id WHERE id = :guild_id")


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

    async def change(self, persona: Persona, changes: Mapping[str, Any]) -> Persona:
        """Set the given fields of ``persona`` (one this session read or added) and write them now, so a
        unique index a change breaks fails here rather than at commit."""
        for key, value in changes.items():
            setattr(persona, key, value)
        await self.session.flush()
        return persona

    async def make_default(self, persona_id: int, guild_id: int | None) -> None:
        """``persona_id`` becomes the only default where ``guild_id`` points (None: global)."""
        scope = Persona.guild_id.is_(None) if guild_id is None else Persona.guild_id == guild_id
        await self.session.execute(update(Persona).where(scope, Persona.id != persona_id).values(is_default=False))
        await self.session.execute(update(Persona).where(Persona.id == persona_id).values(is_default=True))

    async def lock_guild(self, guild_id: int) -> None:
        """Make the rest of the transaction wait for any other that locked this guild, and hold the lock until
        it ends, so two changes to a guild's personas (their name and limit checks included) run one after the
        other. Call it first: on PostgreSQL it locks the guild's row; on SQLite it takes the database's write
        lock, so it waits for every other writer.

        Raises LookupError for a guild id that is not stored: a programming error (callers pass the id of a
        guild they already hold), not something a person can cause."""
        result = await self.session.execute(_LOCK_GUILD, {"guild_id": guild_id})
        if not getattr(result, "rowcount", 0):
            raise LookupError(f"no guild with id {guild_id}")

    async def usable_in(self, guild_id: int) -> list[Persona]:
        """The personas a guild may use: its own first, then the global ones; each group by id."""
        statement = (
            select(Persona)
            .where((Persona.guild_id == guild_id) | Persona.guild_id.is_(None))
            .order_by(func.coalesce(Persona.guild_id, 0).desc(), Persona.id)
        )
        return list((await self.session.scalars(statement)).all())

    async def owned_by(self, guild_id: int) -> list[Persona]:
        """The guild's own personas (no global ones), by id."""
        statement = select(Persona).where(Persona.guild_id == guild_id).order_by(Persona.id)
        return list((await self.session.scalars(statement)).all())

    async def clear_default(self, guild_id: int) -> None:
        """The guild has no default of its own any more, so the global default speaks there."""
        await self.session.execute(
            update(Persona).where(Persona.guild_id == guild_id, Persona.is_default.is_(True)).values(is_default=False)
        )

    async def delete(self, persona_id: int) -> None:
        await self.session.execute(delete(Persona).where(Persona.id == persona_id))

    async def chosen_for_channel(self, channel_id: int) -> Persona | None:
        """The persona a channel plays instead of its guild's (``/persona channel``), if it was given one."""
        statement = (
            select(Persona)
            .join(ChannelPersona, ChannelPersona.persona_id == Persona.id)
            .where(ChannelPersona.channel_id == channel_id)
        )
        return await self.session.scalar(statement)

    async def choose_for_channel(self, *, channel_id: int, guild_id: int, persona_id: int) -> None:
        choice = await self.session.get(ChannelPersona, channel_id)
        if choice is None:
            self.session.add(ChannelPersona(channel_id=channel_id, guild_id=guild_id, persona_id=persona_id))
        else:
            choice.guild_id, choice.persona_id = guild_id, persona_id
        await self.session.flush()

    async def clear_channel(self, channel_id: int) -> bool:
        """The channel plays its guild's persona again; False when it had no choice of its own."""
        result = await self.session.execute(delete(ChannelPersona).where(ChannelPersona.channel_id == channel_id))
        return bool(getattr(result, "rowcount", 0))

    async def guild_of_channel(self, channel_id: int) -> int | None:
        """The guild (row id) of a channel that has a persona or a cast of its own; None when it has neither."""
        chosen = select(ChannelPersona.guild_id).where(ChannelPersona.channel_id == channel_id)
        cast = select(ChannelCast.guild_id).where(ChannelCast.channel_id == channel_id)
        return await self.session.scalar(chosen.union_all(cast).limit(1))

    async def forget_channel(self, channel_id: int) -> None:
        """Drop a channel's own persona and its cast (the personas stay)."""
        await self.session.execute(delete(ChannelPersona).where(ChannelPersona.channel_id == channel_id))
        await self.session.execute(delete(ChannelCast).where(ChannelCast.channel_id == channel_id))

    async def cast_of(self, channel_id: int) -> list[Persona]:
        """The characters in a channel's cast, in the order they joined it."""
        statement = (
            select(Persona)
            .join(ChannelCast, ChannelCast.persona_id == Persona.id)
            .where(ChannelCast.channel_id == channel_id)
            .order_by(ChannelCast.created_at, Persona.id)
        )
        return list((await self.session.scalars(statement)).all())

    async def add_to_cast(self, *, channel_id: int, guild_id: int, persona_id: int) -> None:
        self.session.add(ChannelCast(channel_id=channel_id, guild_id=guild_id, persona_id=persona_id))
        await self.session.flush()

    async def remove_from_cast(self, *, channel_id: int, persona_id: int) -> None:
        await self.session.execute(
            delete(ChannelCast).where(ChannelCast.channel_id == channel_id, ChannelCast.persona_id == persona_id)
        )
