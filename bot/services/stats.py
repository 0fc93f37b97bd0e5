"""Figures for the admins' ``/stats``, the owner's ``usage`` command and the per-guild daily token quota.

Days and months are UTC, like the daily roll-up. The mood shown is the stored one decayed to now toward the
guild's persona baseline, exactly as a reply's prompt would see it (the stored row is only refreshed hourly).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.db.engine import Database
from bot.db.repositories.moods import MoodRepository
from bot.db.repositories.personas import PersonaRepository
from bot.db.repositories.stats import GuildTokens, StatsRepository
from bot.db.session import AsyncSession
from bot.db.types import utcnow
from bot.domain import mood as moods
from bot.domain.place import StatePlace


@dataclass(frozen=True, slots=True)
class MoodNow:
    """Hearth's mood in a place at this moment; ``updated_at`` None: never set there (the baseline)."""

    valence: float
    arousal: float
    label: str  # "content", "happy", "tired", … (bot.domain.mood.mood_name)
    updated_at: datetime | None

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True, slots=True)
class GuildStats:
    guild_id: int  # the guild's row id
    messages: int
    users_known: int
    tokens_today: int
    tokens_this_month: int
    mood: MoodNow

    @property
    def mood_label(self) -> str:
        return self.mood.label


def start_of_day(moment: datetime) -> datetime:
    """Midnight UTC of ``moment``'s UTC day."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def start_of_month(moment: datetime) -> datetime:
    """Midnight UTC on the 1st of ``moment``'s UTC month."""
    return start_of_day(moment).replace(day=1)


async def _mood_now(session: AsyncSession, place: StatePlace, now: datetime) -> MoodNow:
    """The stored mood decayed to ``now`` toward the place's persona baseline (the baseline if none is stored)."""
    stored = await MoodRepository(session).get(place)
    persona = await PersonaRepository(session).default_for(place.guild_id)
    baseline = moods.baseline_of(persona.config if persona is not None else {})
    if stored is None:
        return MoodNow(baseline.valence, baseline.arousal, moods.mood_name(baseline), None)
    current = moods.decayed(stored[0], baseline=baseline, elapsed=now - stored[1])
    return MoodNow(current.valence, current.arousal, moods.mood_name(current), stored[1])


class StatsService:
    def __init__(self, database: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        self.clock = clock

    async def guild_stats(self, guild_id: int) -> GuildStats:
        """What ``/stats`` shows for a guild (its row id); an unknown id gives zeros and the default mood."""
        now = self.clock()
        async with self.database.reading() as session:
            stats = StatsRepository(session)
            counts = await stats.guild_counts(guild_id)
            today = await stats.tokens_since(guild_id, start_of_day(now))
            month = await stats.tokens_since(guild_id, start_of_month(now))
            mood = await _mood_now(session, StatePlace(guild_id=guild_id), now)
        return GuildStats(
            guild_id=guild_id,
            messages=counts.messages,
            users_known=counts.users_known,
            tokens_today=today,
            tokens_this_month=month,
            mood=mood,
        )

    async def mood(self, guild_id: int | None, user_id: int) -> MoodNow:
        """Hearth's mood right now where ``user_id`` (row id) asks: the guild (row id), or (None) their own DM."""
        async with self.database.reading() as session:
            return await _mood_now(session, StatePlace.of(guild_id, user_id), self.clock())

    async def usage(self, since: datetime) -> list[GuildTokens]:
        """Tokens per guild since ``since``, most first; DMs are one line with ``guild_id`` None."""
        async with self.database.reading() as session:
            return await StatsRepository(session).tokens_by_guild(since)
