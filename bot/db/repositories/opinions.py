"""Hearth's opinions per place (a guild, or one user's DM)."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import BotOpinion, BotOpinionSource
from bot.db.repositories._dialect import dialect_name, insert_for
from bot.db.repositories._places import place_key, place_keys, place_parameters
from bot.db.repositories._plain import execute_plain
from bot.db.types import utcnow
from bot.domain.opinions import Opinion, normalize_topic
from bot.domain.place import StatePlace


def _opinions_statement(*, topics: ColumnElement[bool]) -> Select[*tuple[Any, ...]]:
    return select(
        BotOpinion.topic,
        BotOpinion.sentiment,
        BotOpinion.interest_level,
        BotOpinion.discussion_count,
        BotOpinion.formed_at,
        BotOpinion.last_reinforced_at,
    ).where(
        place_key(BotOpinion.guild_id) == bindparam("guild"),
        place_key(BotOpinion.dm_user_id) == bindparam("dm"),
        topics,
    )


# Built once, as every reply reads them: the place as the unique index spells it, and the topics:
# a message's dozens of word runs as one array on PostgreSQL (one statement, whatever their number), expanded
# to one parameter each on SQLite.
_OPINIONS_POSTGRESQL = _opinions_statement(topics=BotOpinion.topic == any_(bindparam("topics", type_=ARRAY(Text))))
_OPINIONS_SQLITE = _opinions_statement(topics=BotOpinion.topic.in_(bindparam("topics", expanding=True)))


class OpinionRepository:
    """Hearth's opinions per place (a guild, or one user's DM); topics are stored normalised (lower-case)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_many(self, place: StatePlace, topics: Sequence[str]) -> dict[str, Opinion]:
        """The stored opinions on ``topics``, keyed by normalised topic (see ``normalize_topic``)."""
        names = sorted({normalize_topic(topic) for topic in topics} - {""})
        if not names:
            return {}
        statement = _OPINIONS_POSTGRESQL if dialect_name(self.session) == "postgresql" else _OPINIONS_SQLITE
        result = await execute_plain(self.session, statement, {**place_parameters(place), "topics": names})
        return {
            row.topic: Opinion(
                topic=row.topic,
                sentiment=row.sentiment,
                interest=row.interest_level,
                discussion_count=row.discussion_count,
                formed_at=row.formed_at,
                last_discussed_at=row.last_reinforced_at,
            )
            for row in result.all()
        }

    async def save(self, place: StatePlace, opinion: Opinion, *, sources: Sequence[int] = ()) -> None:
        """Insert or replace the opinion on ``opinion.topic`` (normalised) in this place. ``sources``: the users
        who spoke in the talk it comes from (recorded for a guild opinion, so erasing one of them erases it;
        a DM opinion belongs to its DM's user already)."""
        topic = normalize_topic(opinion.topic)
        if not topic:
            raise ValueError("an opinion needs a topic")
        insert_ = insert_for(self.session, BotOpinion)
        statement = insert_.values(
            guild_id=place.guild_id,
            dm_user_id=place.dm_user_id,
            topic=topic,
            sentiment=opinion.sentiment,
            interest_level=opinion.interest,
            discussion_count=opinion.discussion_count,
            formed_at=opinion.formed_at,
            last_reinforced_at=opinion.last_discussed_at or utcnow(),
        )
        saved = statement.on_conflict_do_update(
            index_elements=[*place_keys(BotOpinion), BotOpinion.topic],
            set_={
                "sentiment": statement.excluded.sentiment,
                "interest_level": statement.excluded.interest_level,
                "discussion_count": statement.excluded.discussion_count,
                "formed_at": statement.excluded.formed_at,
                "last_reinforced_at": statement.excluded.last_reinforced_at,
                "updated_at": statement.excluded.updated_at,
            },
        )
        opinion_id = (await self.session.execute(saved.returning(BotOpinion.id))).scalar_one()
        if sources and not place.is_dm:
            insert_source = insert_for(self.session, BotOpinionSource)
            await self.session.execute(
                insert_source.values(
                    [{"opinion_id": opinion_id, "user_id": user_id} for user_id in sorted(set(sources))]
                ).on_conflict_do_nothing(index_elements=[BotOpinionSource.opinion_id, BotOpinionSource.user_id])
            )
