"""Hearth's mood per place (a guild, or one user's DM) and the history of its significant changes."""

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import BotState, MoodHistory
from bot.db.repositories._dialect import insert_for
from bot.db.repositories._places import at_place, place_keys
from bot.domain.mood import Mood
from bot.domain.place import StatePlace


class MoodRepository:
    """Hearth's mood per place (a guild, or one user's DM) and the history of its significant changes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, place: StatePlace) -> tuple[Mood, datetime] | None:
        """The mood and when it was last set."""
        statement = select(BotState.mood_valence, BotState.mood_arousal, BotState.mood_updated_at).where(
            at_place(BotState, place)
        )
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else (Mood(row[0], row[1]), row[2])

    async def hold(self, place: StatePlace, *, new: Mood, at: datetime) -> tuple[Mood, datetime]:
        """The mood of ``place`` and when it was set, its row locked until this transaction ends (first stored as
        ``new`` as of ``at`` if the place has none): whoever else holds it waits, and then reads what this
        transaction wrote (on SQLite the insert takes the database's write lock, held as long)."""
        await self.session.execute(
            self._row(place, new, at=at).on_conflict_do_nothing(index_elements=place_keys(BotState))
        )
        statement = (
            select(BotState.mood_valence, BotState.mood_arousal, BotState.mood_updated_at)
            .where(at_place(BotState, place))
            .with_for_update()
        )
        row = (await self.session.execute(statement)).one()
        return Mood(row[0], row[1]), row[2]

    async def save(self, place: StatePlace, mood: Mood, *, at: datetime) -> None:
        statement = self._row(place, mood, at=at)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=place_keys(BotState),
                set_={
                    "mood_valence": statement.excluded.mood_valence,
                    "mood_arousal": statement.excluded.mood_arousal,
                    "mood_updated_at": statement.excluded.mood_updated_at,
                    "updated_at": statement.excluded.updated_at,
                },
            )
        )

    def _row(self, place: StatePlace, mood: Mood, *, at: datetime) -> Any:
        """An insert of ``place``'s first mood row, ``mood`` as of ``at`` (the caller says what a conflict does)."""
        return insert_for(self.session, BotState).values(
            guild_id=place.guild_id,
            dm_user_id=place.dm_user_id,
            mood_valence=mood.valence,
            mood_arousal=mood.arousal,
            mood_updated_at=at,
            first_activated_at=at,
        )

    async def settle(self, place: StatePlace, mood: Mood, *, at: datetime, since: datetime) -> bool:
        """Set the mood of ``place`` to ``mood`` as of ``at``, if it is still the one set at ``since`` (a mood set
        meanwhile, by a conversation, is newer than what ``mood`` was worked out from); whether it was."""
        result = await self.session.execute(
            update(BotState)
            .where(at_place(BotState, place), BotState.mood_updated_at == since)
            .values(mood_valence=mood.valence, mood_arousal=mood.arousal, mood_updated_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    async def record_change(
        self,
        place: StatePlace,
        mood: Mood,
        *,
        at: datetime,
        trigger_type: str,
        user_id: int | None = None,
        description: str | None = None,
    ) -> None:
        """Append a row to mood_history: the mood reached at ``at``, and what caused it."""
        await self.session.execute(
            insert(MoodHistory).values(
                guild_id=place.guild_id,
                dm_user_id=place.dm_user_id,
                valence=mood.valence,
                arousal=mood.arousal,
                trigger_type=trigger_type,
                trigger_user_id=user_id,
                trigger_description=description,
                recorded_at=at,
            )
        )

    async def last_recorded(self, place: StatePlace) -> Mood | None:
        """The mood of the latest mood_history row here (significant changes are measured from it)."""
        statement = (
            select(MoodHistory.valence, MoodHistory.arousal)
            .where(at_place(MoodHistory, place))
            .order_by(MoodHistory.recorded_at.desc(), MoodHistory.id.desc())
            .limit(1)
        )
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else Mood(row[0], row[1])

    async def all_states(self) -> list[tuple[StatePlace, Mood, datetime]]:
        """Every stored mood: (its place, mood, when it was set)."""
        statement = select(
            BotState.guild_id,
            BotState.dm_user_id,
            BotState.mood_valence,
            BotState.mood_arousal,
            BotState.mood_updated_at,
        )
        rows = (await self.session.execute(statement.order_by(BotState.id))).all()
        return [(StatePlace(row[0], row[1]), Mood(row[2], row[3]), row[4]) for row in rows]
