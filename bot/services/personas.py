"""Personas: the character Hearth plays in each place, with a default that ships with the bot.

Personas with ``guild_id`` NULL are global; a guild may also own personas, one of which may be its default.
A guild that has no default of its own is played by the global default. A guild never edits a global persona:
choosing or editing one copies it into a row the guild owns, so no change reaches another guild.
"""

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.db.changes import Change
from bot.db.engine import Database
from bot.db.errors import IntegrityError
from bot.db.models import Persona
from bot.db.repositories.personas import PersonaRepository
from bot.db.repositories.runtime import RuntimeRepository
from bot.domain.cards import MAX_FIELD_CHARS, MAX_NAME_CHARS, Card, persona_fields
from bot.domain.prompt import PersonaCard
from bot.domain.text import normalize_newlines, one_line
from bot.errors import HearthError

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

MAX_GUILD_PERSONAS = 50  # personas one guild may store (each up to a few hundred kB of text)

# What a guild may edit, and the longest each may be; name and personality may not be empty.
EDITABLE_FIELDS: dict[str, int] = {
    "name": MAX_NAME_CHARS,
    "personality_prompt": MAX_FIELD_CHARS,
    "backstory": MAX_FIELD_CHARS,
    "greeting": MAX_FIELD_CHARS,
    "example_dialogue": MAX_FIELD_CHARS,
}
_REQUIRED_FIELDS = {"name", "personality_prompt"}
_FIELD_LABELS = {
    "name": "The name",
    "personality_prompt": "The personality",
    "backstory": "The backstory",
    "greeting": "The greeting",
    "example_dialogue": "The example dialogue",
}
_SPACES = re.compile(r"\s+")

T = TypeVar("T")


MAX_CAST = 10  # characters in one channel's cast


class PersonaError(HearthError, ValueError):
    """A persona change that cannot be made; the message says why, for the person who asked."""


@dataclass(frozen=True, slots=True)
class PersonaView:
    id: int
    name: str
    card: PersonaCard
    config: dict[str, Any] = field(default_factory=dict)
    greeting: str | None = None
    owned_by_guild: bool = False  # False: a global persona, shared by every guild that has no own default
    attributes: dict[str, Any] = field(default_factory=dict)  # e.g. where it came from: a character card
    avatar_url: str | None = None  # shown when it speaks as a cast character, through a webhook

    @property
    def apology(self) -> str:
        return str(self.config.get("apology") or FALLBACK_APOLOGY)

    @property
    def personality_prompt(self) -> str:
        return self.card.personality

    @property
    def backstory(self) -> str | None:
        return self.card.backstory

    @property
    def example_dialogue(self) -> str | None:
        return self.card.example_dialogue


def _view(persona: Persona) -> PersonaView:
    card = PersonaCard(
        name=persona.name,
        personality=persona.personality_prompt,
        backstory=persona.backstory,
        example_dialogue=persona.example_dialogue,
    )
    return PersonaView(
        id=persona.id,
        name=persona.name,
        card=card,
        config=dict(persona.config),
        greeting=persona.greeting,
        owned_by_guild=persona.guild_id is not None,
        attributes=dict(persona.attributes or {}),
        avatar_url=persona.avatar_url,
    )


def _key(name: str) -> str:
    """Names compare without regard to case or runs of spaces (done here: SQLite's lower() is ASCII only)."""
    return _SPACES.sub(" ", name).strip().casefold()


def _quoted(text: str) -> str:
    return f"“{one_line(text, 60)}”"


def _named(personas: list[Persona], name: str) -> Persona | None:
    """The first of ``personas`` called ``name`` (see :func:`_key`)."""
    key = _key(name)
    return next((persona for persona in personas if _key(persona.name) == key), None)


def _check_room(own: list[Persona]) -> None:
    """Refuse to store one more persona for a guild whose own personas are ``own``, if that is the most allowed."""
    if len(own) >= MAX_GUILD_PERSONAS:
        raise PersonaError(
            f"This server already stores {len(own)} personas, the most it may keep. Delete one of its own first."
        )


def _names_list(personas: list[Persona], limit: int = 1000) -> str:
    """The personas' names for a message, cut to about ``limit`` characters."""
    names: list[str] = []
    for index, persona in enumerate(personas):
        if sum(len(name) + 2 for name in names) + len(persona.name) > limit:
            names.append(f"and {len(personas) - index} more")
            break
        names.append(persona.name)
    return ", ".join(names)


def _validated(changes: dict[str, str | None]) -> dict[str, str | None]:
    """The edit a guild asked for, checked and tidied: None leaves a field as it is; an empty optional
    field is cleared; names are one line."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"personas cannot edit {', '.join(sorted(unknown))}")
    tidy: dict[str, str | None] = {}
    for key, value in changes.items():
        if value is None:
            continue
        text = normalize_newlines(value).strip()
        if key == "name":
            text = _SPACES.sub(" ", text)
        label, limit = _FIELD_LABELS[key], EDITABLE_FIELDS[key]
        if not text and key in _REQUIRED_FIELDS:
            raise PersonaError(f"{label} cannot be empty.")
        if len(text) > limit:
            raise PersonaError(f"{label} may be at most {limit:,} characters long (this one is {len(text):,}).")
        tidy[key] = text or None
    return tidy


async def _usable_named(repo: PersonaRepository, guild_id: int, name: str) -> Persona:
    """The persona called ``name`` (any case; the guild's own before a global one) that the guild may use."""
    personas = await repo.usable_in(guild_id)
    chosen = _named(personas, name)
    if chosen is None:
        raise PersonaError(f"There is no persona called {_quoted(name)} here. You can choose: {_names_list(personas)}.")
    return chosen


class PersonaService:
    def __init__(self, database: Database, *, ttl_s: float = 60.0) -> None:
        self.database = database
        self.ttl_s = ttl_s
        self._cache: dict[int | None, tuple[PersonaView, float]] = {}
        # Discord channel id → (its guild's row id, the persona it plays instead of the guild's or None, read at).
        self._channels: dict[int, tuple[int, PersonaView | None, float]] = {}
        # Discord channel id → (its guild's row id, its cast, read at).
        self._casts: dict[int, tuple[int, list[PersonaView], float]] = {}
        self._creating = asyncio.Lock()
        # Bumped on every change, so a read that started before a change never caches what it read.
        self._changes = 0
        self._ensured = False  # ensure_default has succeeded once in this process

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
                    self._ensured = True
                    return _view(persona)
                except IntegrityError:
                    if attempt:
                        raise
            raise AssertionError("unreachable")

    async def _ensure_default_once(self) -> None:
        """:meth:`ensure_default`, but only until it has succeeded once in this process (a write transaction
        on every command would be wasted: the global default is never deleted)."""
        if not self._ensured:
            await self.ensure_default()

    async def for_guild(self, guild_id: int | None) -> PersonaView:
        """The persona that speaks in this guild (``None``: DMs), cached for ``ttl_s``."""
        cached = self._cache.get(guild_id)
        if cached is not None and time.monotonic() - cached[1] < self.ttl_s:
            return cached[0]
        changes = self._changes
        async with self.database.session() as session:
            persona = await PersonaRepository(session).default_for(guild_id)
        view = _view(persona) if persona is not None else await self.ensure_default()
        if changes == self._changes:
            self._cache[guild_id] = (view, time.monotonic())
        return view

    async def update_global_default(self, **changes: Any) -> PersonaView:
        """Edit the global default persona (name, personality_prompt, backstory, …)."""
        await self.ensure_default()
        async with self.database.session() as session:
            repo = PersonaRepository(session)
            persona = await repo.default_for(None)
            assert persona is not None
            await repo.change(persona, changes)
            await RuntimeRepository(session).announce(Change("persona", None))
        self.forget_all()
        return _view(persona)

    def forget(self, guild_id: int | None) -> None:
        """Drop the guild's cached persona (another process changed it); None: a global persona changed,
        which any guild may be played by, so every cached one goes."""
        if guild_id is None:
            self.forget_all()
            return
        self._changes += 1
        self._cache.pop(guild_id, None)
        self._channels = {channel: entry for channel, entry in self._channels.items() if entry[0] != guild_id}
        self._casts = {channel: entry for channel, entry in self._casts.items() if entry[0] != guild_id}

    def forget_all(self) -> None:
        self._changes += 1
        self._cache.clear()
        self._channels.clear()
        self._casts.clear()

    async def for_channel(self, guild_id: int, channel_id: int) -> PersonaView:
        """The persona that speaks in one of the guild's channels: the channel's own (``/persona channel``),
        else the guild's; cached for ``ttl_s``."""
        cached = self._channels.get(channel_id)
        if cached is None or cached[0] != guild_id or time.monotonic() - cached[2] >= self.ttl_s:
            changes = self._changes
            async with self.database.reading() as session:
                chosen = await PersonaRepository(session).chosen_for_channel(channel_id)
            cached = (guild_id, _view(chosen) if chosen is not None else None, time.monotonic())
            if changes == self._changes:
                self._channels[channel_id] = cached
        return cached[1] if cached[1] is not None else await self.for_guild(guild_id)

    # ------------------------------------------------------------------------------------------ per guild
    # Each takes the guild's row id (``guilds.id``), and each change is seen at once by ``for_guild``.

    async def available(self, guild_id: int) -> list[PersonaView]:
        """The personas this guild may use: its own first, then the global ones (compare ``id`` with
        ``for_guild(guild_id).id`` to tell which one speaks there now)."""
        await self._ensure_default_once()
        async with self.database.reading() as session:
            personas = await PersonaRepository(session).usable_in(guild_id)
        return [_view(persona) for persona in personas]

    async def use(self, guild_id: int, name: str) -> PersonaView:
        """Make the persona called ``name`` (any case; the guild's own before a global one) speak in the guild.

        A global persona is copied into a row the guild owns, so the guild's later edits stay its own.
        """
        await self._ensure_default_once()

        async def work(repo: PersonaRepository) -> Persona:
            chosen = await self._owned(repo, await _usable_named(repo, guild_id, name), guild_id)
            await repo.make_default(chosen.id, guild_id)
            return chosen

        return _view(await self._change(guild_id, work))

    async def edit(self, guild_id: int, **fields: str | None) -> PersonaView:
        """Change the guild's persona: ``name``, ``personality_prompt``, ``backstory``, ``greeting`` or
        ``example_dialogue``. A field given as None is left as it is; ``""`` clears an optional one.

        A guild played by a global persona gets its own copy first, and that copy is what changes.
        """
        changes = _validated(fields)
        await self._ensure_default_once()

        async def work(repo: PersonaRepository) -> Persona:
            persona = await repo.default_for(guild_id)
            assert persona is not None  # ensure_default made the global one
            if all(getattr(persona, key) == value for key, value in changes.items()):
                return persona  # e.g. a form sent back unchanged: no copy of a global persona for nothing
            if persona.guild_id is None:
                persona = await self._copy_for(repo, persona, guild_id)
                await repo.make_default(persona.id, guild_id)
            new_name = changes.get("name")
            if new_name is not None and _key(new_name) != _key(persona.name):
                other = _named(await repo.owned_by(guild_id), new_name)  # never ``persona``: its name differs
                if other is not None:
                    raise PersonaError(
                        f"This server already has a persona called {_quoted(other.name)}; choose another name."
                    )
            return await repo.change(persona, changes)

        return _view(await self._change(guild_id, work))

    async def reset(self, guild_id: int) -> PersonaView:
        """The global default speaks in this guild again; the guild's own personas stay stored."""

        async def work(repo: PersonaRepository) -> None:
            await repo.clear_default(guild_id)

        await self._change(guild_id, work)
        return await self.for_guild(guild_id)

    async def import_card(self, guild_id: int, card: Card) -> PersonaView:
        """Store a character card as the guild's own persona and make it the guild's persona.

        A card named like one of the guild's own personas (any case) replaces that persona's character;
        its settings (``config``) stay.
        """
        fields = persona_fields(card)

        async def work(repo: PersonaRepository) -> Persona:
            own = await repo.owned_by(guild_id)
            persona = _named(own, fields["name"])
            if persona is None:
                _check_room(own)
                persona = await repo.add(**fields, guild_id=guild_id, is_default=False)
            else:
                await repo.change(persona, fields)
            await repo.make_default(persona.id, guild_id)
            return persona

        return _view(await self._change(guild_id, work))

    async def delete(self, guild_id: int, name: str) -> None:
        """Delete one of the guild's own personas (global ones cannot be deleted from a guild). If it was
        the guild's persona, the global default speaks there again."""

        async def work(repo: PersonaRepository) -> None:
            own = await repo.owned_by(guild_id)
            persona = _named(own, name)
            if persona is None:
                choices = f" Its own are: {_names_list(own)}." if own else " It has none of its own."
                raise PersonaError(
                    f"This server has no persona of its own called {_quoted(name)}; only those can be deleted."
                    + choices
                )
            await repo.delete(persona.id)

        await self._change(guild_id, work)

    async def use_in_channel(self, guild_id: int, channel_id: int, name: str) -> PersonaView:
        """Make the persona called ``name`` speak in one channel of the guild instead of the guild's (a global
        one is copied for the guild first, as :meth:`use` does)."""
        await self._ensure_default_once()

        async def work(repo: PersonaRepository) -> Persona:
            chosen = await self._owned(repo, await _usable_named(repo, guild_id, name), guild_id)
            await repo.choose_for_channel(channel_id=channel_id, guild_id=guild_id, persona_id=chosen.id)
            return chosen

        return _view(await self._change(guild_id, work))

    async def reset_channel(self, guild_id: int, channel_id: int) -> PersonaView:
        """The channel plays the guild's persona again; returns that persona."""

        async def work(repo: PersonaRepository) -> bool:
            return await repo.clear_channel(channel_id)

        if not await self._change(guild_id, work):
            raise PersonaError("This channel already plays the server's persona.")
        return await self.for_guild(guild_id)

    async def cast(self, guild_id: int, channel_id: int) -> list[PersonaView]:
        """The characters of a channel's cast (``/persona cast add``), by name; cached for ``ttl_s``."""
        cached = self._casts.get(channel_id)
        if cached is None or cached[0] != guild_id or time.monotonic() - cached[2] >= self.ttl_s:
            changes = self._changes
            async with self.database.reading() as session:
                members = await PersonaRepository(session).cast_of(channel_id)
            cached = (guild_id, [_view(persona) for persona in members], time.monotonic())
            if changes == self._changes:
                self._casts[channel_id] = cached
        return cached[1]

    async def cast_add(self, guild_id: int, channel_id: int, name: str) -> PersonaView:
        """Put the persona called ``name`` into the channel's cast (a global one is copied for the guild first)."""
        await self._ensure_default_once()

        async def work(repo: PersonaRepository) -> Persona:
            chosen = await _usable_named(repo, guild_id, name)
            cast = await repo.cast_of(channel_id)
            if any(_key(member.name) == _key(chosen.name) for member in cast):
                raise PersonaError(f"{_quoted(chosen.name)} is in this channel's cast already.")
            if len(cast) >= MAX_CAST:
                raise PersonaError(f"A channel's cast holds at most {MAX_CAST} characters; remove one first.")
            chosen = await self._owned(repo, chosen, guild_id)
            await repo.add_to_cast(channel_id=channel_id, guild_id=guild_id, persona_id=chosen.id)
            return chosen

        return _view(await self._change(guild_id, work))

    async def cast_remove(self, guild_id: int, channel_id: int, name: str) -> PersonaView:
        """Take the character called ``name`` out of the channel's cast (it stays stored)."""

        async def work(repo: PersonaRepository) -> Persona:
            cast = await repo.cast_of(channel_id)
            member = _named(cast, name)
            if member is None:
                names = ", ".join(_quoted(m.name) for m in cast) or "nobody yet"
                raise PersonaError(f"{_quoted(name)} is not in this channel's cast (it has {names}).")
            await repo.remove_from_cast(channel_id=channel_id, persona_id=member.id)
            return member

        return _view(await self._change(guild_id, work))

    async def channel_deleted(self, channel_id: int) -> None:
        """A channel deleted on Discord takes its own persona and its cast with it (the personas stay the guild's):
        nothing is kept for a channel that cannot come back. Made as any change is, so every process forgets it."""
        async with self.database.reading() as session:
            guild_id = await PersonaRepository(session).guild_of_channel(channel_id)
        if guild_id is not None:
            await self._change(guild_id, lambda repo: repo.forget_channel(channel_id))

    async def _owned(self, repo: PersonaRepository, persona: Persona, guild_id: int) -> Persona:
        """``persona`` as a row the guild owns: a global one is copied, so the guild's later edits stay its own."""
        return persona if persona.guild_id is not None else await self._copy_for(repo, persona, guild_id)

    async def _copy_for(self, repo: PersonaRepository, persona: Persona, guild_id: int) -> Persona:
        """A guild-owned copy of a global persona (not yet the guild's default)."""
        _check_room(await repo.owned_by(guild_id))
        return await repo.add(
            name=persona.name,
            avatar_url=persona.avatar_url,
            personality_prompt=persona.personality_prompt,
            backstory=persona.backstory,
            greeting=persona.greeting,
            example_dialogue=persona.example_dialogue,
            attributes={**persona.attributes, "copied_from": persona.id},
            config=dict(persona.config),
            guild_id=guild_id,
            is_default=False,
        )

    async def _change(self, guild_id: int, work: Callable[[PersonaRepository], Awaitable[T]]) -> T:
        """Run ``work`` as one unit of work, after any other change to this guild's personas has finished
        (so the one-default-per-guild index is never raced), then forget the guild's cached persona, here and
        (announced with the change) in every other process on the database."""
        async with self.database.session() as session:
            repo = PersonaRepository(session)
            await repo.lock_guild(guild_id)
            result = await work(repo)
            await RuntimeRepository(session).announce(Change("persona", guild_id))
        self.forget(guild_id)
        return result
