"""Personas: the character Hearth plays in each place, with a default that ships with the bot."""

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from bot.db.engine import Database
from bot.db.models import Persona
from bot.db.repositories.personas import PersonaRepository
from bot.domain.prompt import PersonaCard

DEFAULT_PERSONA: dict[str, Any] = {
    "name": "Hearth",
    "personality_prompt": (
        "You are a warm, curious and quietly funny companion who lives in this Discord. You remember people, "
        "ask about the things they care about, and speak like a friend in a chat: short, natural messages, "
        "the odd emoji when the mood is light, never a lecture. You are honest about what you do not know."
    ),
    "backstory": (
        "You began as the fire in the corner of an old online tavern, where people came in from the cold to "
        "talk. You still think of every server as a room with a fire in it."
    ),
    "greeting": "Hey, come sit by the fire. What's on your mind?",
    "example_dialogue": "User: rough day\nHearth: Ugh, sorry. Want to vent, or want a distraction?",
    "config": {"apology": "Sorry, my thoughts got tangled for a moment. Could you say that again?"},
}

FALLBACK_APOLOGY = "Sorry, my thoughts got tangled for a moment. Could you say that again?"


@dataclass(frozen=True, slots=True)
class PersonaView:
    id: int
    name: str
    card: PersonaCard
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def apology(self) -> str:
        return str(self.config.get("apology") or FALLBACK_APOLOGY)


def _view(persona: Persona) -> PersonaView:
    card = PersonaCard(
        name=persona.name,
        personality=persona.personality_prompt,
        backstory=persona.backstory,
        example_dialogue=persona.example_dialogue,
    )
    return PersonaView(id=persona.id, name=persona.name, card=card, config=dict(persona.config))


class PersonaService:
    def __init__(self, database: Database, *, ttl_s: float = 60.0) -> None:
        self.database = database
        self.ttl_s = ttl_s
        self._cache: dict[int | None, tuple[PersonaView, float]] = {}
        self._creating = asyncio.Lock()

    async def ensure_default(self) -> PersonaView:
        """Create the shipped global persona if there is no global default yet (first start).

        Safe to race: within a process a lock serialises callers; across processes the unique index on the
        default persona makes the loser read what the winner wrote.
        """
        async with self._creating:
            for attempt in range(2):
                try:
                    async with self.database.session() as session:
                        repo = PersonaRepository(session)
                        persona = await repo.default_for(None)
                        if persona is None:
                            persona = await repo.add(**DEFAULT_PERSONA, is_default=True, guild_id=None)
                        return _view(persona)
                except IntegrityError:
                    if attempt:
                        raise
            raise AssertionError("unreachable")

    async def for_guild(self, guild_id: int | None) -> PersonaView:
        """The persona that speaks in this guild (``None``: DMs), cached for ``ttl_s``."""
        cached = self._cache.get(guild_id)
        if cached is not None and time.monotonic() - cached[1] < self.ttl_s:
            return cached[0]
        async with self.database.session() as session:
            persona = await PersonaRepository(session).default_for(guild_id)
        view = _view(persona) if persona is not None else await self.ensure_default()
        self._cache[guild_id] = (view, time.monotonic())
        return view

    async def update_global_default(self, **changes: Any) -> PersonaView:
        """Edit the global default persona (name, personality_prompt, backstory, …)."""
        await self.ensure_default()
        async with self.database.session() as session:
            persona = await PersonaRepository(session).default_for(None)
            assert persona is not None
            for key, value in changes.items():
                setattr(persona, key, value)
        self._cache.clear()
        return _view(persona)
