"""Who and where: users, guilds and members kept current in the database, cheaply.

A chat message names its author and guild; writing those rows on every message would double the work of
a turn. The directory remembers what it last wrote and writes again only when a name changed or the row is
older than ``refresh`` (so ``last_seen_at`` is accurate to that). Guild settings are cached for ``settings_ttl``
and dropped at once when changed through :meth:`update_guild_settings`; the change is announced to other
processes on the database, which drop theirs (see bot/services/coordination.py).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.db.changes import Change
from bot.db.engine import Database
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.runtime import RuntimeRepository
from bot.db.repositories.users import UserRepository
from bot.db.session import AsyncSession
from bot.domain import guild_settings
from bot.domain.guild_settings import GuildSettings
from bot.domain.triggers import ChatRules
from bot.services.incoming import Author, Place


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: int
    guild_id: int | None


@dataclass(frozen=True, slots=True)
class GuildView:
    guild_id: int
    settings: dict[str, Any]
    rules: ChatRules
    typed: GuildSettings  # ``settings`` read once, with their defaults


def rules_from_settings(settings: dict[str, Any], typed: GuildSettings) -> ChatRules:
    return ChatRules(
        chat_channels=typed.chat_channels,
        blocked_channels=typed.blocked_channels,
        blocked_users=typed.blocked_users,
        allowed_roles=typed.allowed_roles,
        reply_mode=typed.reply_mode,
        chime_in_percent=typed.chime_in_percent,
    )


class Directory:
    def __init__(
        self, database: Database, *, refresh: timedelta = timedelta(minutes=5), settings_ttl_s: float = 60.0
    ) -> None:
        self.database = database
        self.refresh = refresh
        self.settings_ttl_s = settings_ttl_s
        self._users: dict[int, tuple[int, tuple[str, str | None], datetime]] = {}
        self._members: dict[tuple[int, int], tuple[tuple[str | None, tuple[str, ...]], datetime]] = {}
        self._guilds: dict[int, tuple[GuildView, float]] = {}
        # Bumped whenever cached guilds are dropped, so a read that started before a change never caches it.
        self._guild_changes = 0

    def forget(self) -> None:
        """Drop every cached row (after a database error, or when rows were deleted elsewhere)."""
        self._users.clear()
        self._members.clear()
        self.forget_guilds()

    def forget_guild(self, discord_id: int) -> None:
        """Drop the guild's cached settings (another process changed them)."""
        self._guild_changes += 1
        self._guilds.pop(discord_id, None)

    def forget_guilds(self) -> None:
        self._guild_changes += 1
        self._guilds.clear()

    def forget_user(self, discord_id: int) -> None:
        self._users.pop(discord_id, None)
        self._members = {key: value for key, value in self._members.items() if key[1] != discord_id}

    async def record(self, session: AsyncSession, author: Author, place: Place, at: datetime) -> Identity:
        """Make sure the author (and guild, and membership) exist and are current; return their row ids."""
        guild_id = None
        if place.guild_id is not None:
            guild_id = (await self._guild(session, place)).guild_id
        user_id = await self._user(session, author, at)
        if guild_id is not None:
            await self._member(session, guild_id, user_id, author, at)
        return Identity(user_id=user_id, guild_id=guild_id)

    async def identify(self, author: Author, place: Place, at: datetime) -> Identity:
        """:meth:`record` in a unit of work of its own: the row ids behind a Discord user and place."""
        async with self.database.session() as session:
            return await self.record(session, author, place, at)

    async def guild(self, place: Place) -> GuildView | None:
        """The guild's id, settings and chat rules (None in DMs); creates the guild row on first sight."""
        if place.guild_id is None:
            return None
        cached = self._guilds.get(place.guild_id)
        if cached is not None and time.monotonic() - cached[1] < self.settings_ttl_s:
            return cached[0]
        async with self.database.session() as session:
            return await self._guild(session, place)

    async def stored_settings(self, discord_id: int) -> GuildSettings | None:
        """The guild's settings as stored (or as cached by :meth:`guild`); None for a guild Hearth holds no row for.
        Only reads: unlike :meth:`guild`, it never creates the guild's row."""
        cached = self._guilds.get(discord_id)
        if cached is not None and time.monotonic() - cached[1] < self.settings_ttl_s:
            return cached[0].typed
        async with self.database.reading() as session:
            guild = await GuildRepository(session).get_by_discord_id(discord_id)
        return None if guild is None else guild_settings.read(dict(guild.settings))

    async def update_guild_settings(
        self, place: Place, changes: dict[str, Any] | Callable[[GuildSettings], dict[str, Any]]
    ) -> dict[str, Any]:
        """Merge ``changes`` into the guild's settings (None removes a key) and return the new settings.

        ``changes`` may be worked out from the settings as stored (a function of them): it is called in the
        transaction that makes the change, with the guild's row locked, so two changes to one list made at the
        same moment (here or in another process) both hold."""
        async with self.database.session() as session:
            view = await self._guild(session, place, fresh=True)  # the upsert locks the row until the commit
            wanted = changes(view.typed) if callable(changes) else changes
            settings = await GuildRepository(session).update_settings(view.guild_id, wanted)
            assert place.guild_id is not None
            await RuntimeRepository(session).announce(Change("guild_settings", place.guild_id))
        self._guilds.pop(place.guild_id, None)
        return settings

    async def _guild(self, session: AsyncSession, place: Place, *, fresh: bool = False) -> GuildView:
        assert place.guild_id is not None
        cached = self._guilds.get(place.guild_id)
        if not fresh and cached is not None and time.monotonic() - cached[1] < self.settings_ttl_s:
            return cached[0]
        changes = self._guild_changes
        guild = await GuildRepository(session).upsert(discord_id=place.guild_id, name=place.guild_name or "")
        settings = dict(guild.settings)
        typed = guild_settings.read(settings)
        view = GuildView(guild.id, settings, rules_from_settings(settings, typed), typed)
        if changes == self._guild_changes:
            self._guilds[place.guild_id] = (view, time.monotonic())
        return view

    async def _user(self, session: AsyncSession, author: Author, at: datetime) -> int:
        names = (author.username, author.display_name)
        cached = self._users.get(author.discord_id)
        if cached is not None and cached[1] == names and at - cached[2] < self.refresh:
            return cached[0]
        user = await UserRepository(session).upsert(
            discord_id=author.discord_id, username=author.username, display_name=author.display_name, seen_at=at
        )
        self._users[author.discord_id] = (user.id, names, at)
        return user.id

    async def _member(self, session: AsyncSession, guild_id: int, user_id: int, author: Author, at: datetime) -> None:
        key = (guild_id, author.discord_id)
        state = (author.nickname, author.roles)
        cached = self._members.get(key)
        if cached is not None and cached[0] == state and at - cached[1] < self.refresh:
            return
        await GuildRepository(session).upsert_member(
            guild_id=guild_id, user_id=user_id, nickname=author.nickname, roles=list(author.roles), joined_at=None
        )
        self._members[key] = (state, at)
