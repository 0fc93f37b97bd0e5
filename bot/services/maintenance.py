"""Housekeeping the scheduler runs and the owner can run by hand: each a plain method returning a count.

- mood decay (hourly): every stored mood (each guild's, each DM's) moves toward its persona's baseline for the
  time since it was set;
- closing idle conversations and writing their summaries (``ConversationSummaries.close_idle``);
- fact expiry: facts past their expiry date stop being current (kept, with ``valid_to``);
- pruning: message memories older than the retention period, never recalled since and of ordinary
  importance, are deleted (summaries and knowledge stay);
- the daily token roll-up: yesterday's replies counted per user and per guild, and those of the days before it
  not rolled up yet (every process stopped through their roll-up), up to ``ROLL_UP_DAYS`` back.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot.db.engine import Database
from bot.db.repositories.facts import FactRepository
from bot.db.repositories.memories import MemoryRepository
from bot.db.repositories.moods import MoodRepository
from bot.db.repositories.runtime import RuntimeRepository
from bot.db.repositories.usage import UsageRepository
from bot.db.types import utcnow
from bot.domain import mood as moods
from bot.services.personas import PersonaService
from bot.services.summaries import ConversationSummaries

# Memories at or below this importance may be pruned once past retention (the default importance is 0.5).
PRUNABLE_IMPORTANCE = 0.5
# How many days, up to yesterday, the daily roll-up looks back at for days not rolled up yet.
ROLL_UP_DAYS = 31
# Memories pruned per transaction: each batch holds SQLite's write lock for a few tens of milliseconds.
PRUNE_BATCH = 1_000

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MaintenanceConfig:
    memory_retention: timedelta | None = timedelta(days=365)  # None: keep every memory


class Maintenance:
    def __init__(
        self,
        database: Database,
        personas: PersonaService,
        summaries: ConversationSummaries,
        config: MaintenanceConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database = database
        self.personas = personas
        self.summaries = summaries
        self.config = config
        self.clock = clock

    async def decay_moods(self) -> int:
        """Let every stored mood settle toward its baseline; returns how many were updated. A mood a conversation
        set since it was read here (the learner, in this process or another) is newer, and left as it is; so is
        one another process's decay settled first."""
        now = self.clock()
        settled = 0
        async with self.database.session() as session:
            repo = MoodRepository(session)
            for place, mood, since in await repo.all_states():
                baseline = moods.baseline_of((await self.personas.for_guild(place.guild_id)).config)
                decayed = moods.decayed(mood, baseline=baseline, elapsed=now - since)
                settled += await repo.settle(place, decayed, at=now, since=since)
        return settled

    async def close_idle_conversations(self) -> int:
        return await self.summaries.close_idle()

    async def expire_facts(self) -> int:
        async with self.database.session() as session:
            return await FactRepository(session).expire(self.clock())

    async def prune_memories(self) -> int:
        """Delete the memories past retention, ``PRUNE_BATCH`` at a time, each batch its own transaction: on SQLite
        a delete holds the one write lock, and replies stored meanwhile wait for it (100,000 memories in one
        statement took seconds). Returns how many went; a prune cut short keeps the batches done, and the next run
        prunes the rest."""
        if self.config.memory_retention is None:
            return 0
        older_than = self.clock() - self.config.memory_retention
        pruned = 0
        try:
            while True:
                async with self.database.session() as session:
                    batch = await MemoryRepository(session).prune(
                        older_than=older_than, max_importance=PRUNABLE_IMPORTANCE, limit=PRUNE_BATCH
                    )
                pruned += batch
                if batch < PRUNE_BATCH:
                    return pruned
        except BaseException:
            if pruned:
                log.warning("memory pruning stopped after %d memories; the next run prunes the rest", pruned)
            raise

    async def roll_up_tokens(self, day: date | None = None) -> int:
        """Count ``day``'s replies (default: yesterday's, and those of each day of the ``ROLL_UP_DAYS`` up to it not
        rolled up yet; UTC) into the daily usage tables; returns how many rows were written. Processes started
        together roll the same day up at the same moment: one waits for the other's rows, and replaces them."""
        if day is not None:
            return await self._roll_up(day)
        yesterday = (self.clock() - timedelta(days=1)).date()
        since = yesterday - timedelta(days=ROLL_UP_DAYS - 1)
        async with self.database.reading() as session:
            done = await UsageRepository(session).rolled_up_days(since)
        days = [since + timedelta(days=n) for n in range(ROLL_UP_DAYS)]
        return sum([await self._roll_up(each) for each in days if each == yesterday or each not in done])

    async def _roll_up(self, day: date) -> int:
        async with self.database.session() as session:
            await RuntimeRepository(session).hold_until_commit("token-roll-up", day.toordinal())
            return await UsageRepository(session).roll_up(day)
