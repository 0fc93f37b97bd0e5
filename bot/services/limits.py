"""Limits that keep one person or one server from using up Hearth: a per-user cooldown (between replies, and
between slash commands) and a guild's daily token quota.

Both live in memory. The quota is counted from the replies stored in the database, and the greetings and
follow-ups the model wrote (so a restart, or another process on the same database, is caught up within
``refresh_s``), and kept current between counts by adding each one's tokens as it is stored.
"""

import time
from collections.abc import Callable
from datetime import date, datetime

from bot.db.engine import Database
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.stats import StatsRepository
from bot.db.types import utcnow
from bot.domain import guild_settings
from bot.services.directory import Directory
from bot.services.incoming import Place
from bot.services.stats import start_of_day


class Cooldowns:
    """When each key (a user, in some place) may act again."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last: dict[object, float] = {}

    def remaining(self, key: object, seconds: float) -> float:
        """Seconds left before ``key`` may act again (0: now)."""
        last = self._last.get(key)
        if last is None or seconds <= 0:
            return 0.0
        return max(0.0, last + seconds - self.clock())

    def mark(self, key: object) -> None:
        now = self.clock()
        self._last[key] = now
        if len(self._last) > 10_000:  # forget keys long past any cooldown
            self._last = {k: at for k, at in self._last.items() if now - at < 120}

    def try_acquire(self, key: object, seconds: float) -> float:
        """0 and marked if ``key`` may act now; otherwise the seconds left (and nothing marked)."""
        left = self.remaining(key, seconds)
        if left == 0:
            self.mark(key)
        return left


class CommandCooldown:
    """The wait between two slash commands of one person: the server's ``/config cooldown``, else
    ``default_s`` (USER_COOLDOWN_SECONDS)."""

    def __init__(self, directory: Directory, cooldowns: Cooldowns, default_s: float) -> None:
        self.directory = directory
        self.cooldowns = cooldowns
        self.default_s = default_s

    async def seconds_for(self, place: Place) -> float:
        view = await self.directory.guild(place)
        return guild_settings.cooldown_s(view.typed if view is not None else None, self.default_s)

    async def try_acquire(self, user_discord_id: int, place: Place) -> float:
        """0 (and the command counted) if the user may run a command now; otherwise the seconds left."""
        seconds = await self.seconds_for(place)
        return self.cooldowns.try_acquire(("command", user_discord_id), seconds)


class TokenQuota:
    """Tokens each guild spent today (UTC), to hold a guild to its ``daily-token-quota``."""

    def __init__(self, database: Database, *, clock: Callable[[], datetime] = utcnow, refresh_s: float = 60.0) -> None:
        self.database = database
        self.clock = clock
        self.refresh_s = refresh_s
        self._used: dict[int, tuple[date, int, float]] = {}  # guild → (day, tokens, monotonic time counted)

    async def used_today(self, guild_id: int) -> int:
        today = self.clock().date()
        cached = self._used.get(guild_id)
        if cached is not None and cached[0] == today and time.monotonic() - cached[2] < self.refresh_s:
            return cached[1]
        async with self.database.reading() as session:
            used = await StatsRepository(session).tokens_since(guild_id, start_of_day(self.clock()))
        self._used[guild_id] = (today, used, time.monotonic())
        return used

    async def exhausted(self, guild_id: int, quota: int | None) -> bool:
        """Whether the guild spent ``quota`` tokens today (None or 0: no quota, never)."""
        return bool(quota) and await self.used_today(guild_id) >= (quota or 0)

    async def exhausted_in(self, guild_id: int) -> bool:
        """:meth:`exhausted`, reading the guild's ``daily-token-quota`` setting (row id ``guild_id``)."""
        async with self.database.reading() as session:
            settings = await GuildRepository(session).settings_of(guild_id)
        return await self.exhausted(guild_id, guild_settings.read(settings).daily_token_quota)

    def spent(self, guild_id: int, tokens: int) -> None:
        """Count a reply's tokens now, without waiting for the next recount."""
        cached = self._used.get(guild_id)
        if cached is not None and cached[0] == self.clock().date():
            self._used[guild_id] = (cached[0], cached[1] + tokens, cached[2])
