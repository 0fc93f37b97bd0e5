"""Hearth and each user: the relationship, per guild (``guild_id`` NULL for DMs)."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import UserRelationship
from bot.db.repositories._dialect import insert_for
from bot.db.repositories._places import in_place, place_key
from bot.db.types import utcnow
from bot.domain.relationship import Relationship

RELATIONSHIP_COLUMNS = (
    UserRelationship.relationship_score,
    UserRelationship.total_interactions,
    UserRelationship.positive_interactions,
    UserRelationship.negative_interactions,
    UserRelationship.last_interaction_at,
    UserRelationship.shared_references,
)


def relationship_of(row: Any) -> Relationship:
    """A row with ``RELATIONSHIP_COLUMNS`` as a Relationship."""
    references = row.shared_references or {}
    return Relationship(
        score=row.relationship_score,
        interaction_count=row.total_interactions,
        positive_count=row.positive_interactions,
        negative_count=row.negative_interactions,
        last_interaction_at=row.last_interaction_at,
        nicknames=tuple(str(n) for n in references.get("nicknames", ())),
        inside_jokes=tuple(str(j) for j in references.get("inside_jokes", ())),
    )


class RelationshipRepository:
    """Hearth and one user, per guild (``guild_id`` None: DMs)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int, guild_id: int | None) -> Relationship | None:
        statement = select(*RELATIONSHIP_COLUMNS).where(
            UserRelationship.user_id == user_id, in_place(UserRelationship.guild_id, guild_id)
        )
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else relationship_of(row)

    async def save(
        self, user_id: int, guild_id: int | None, state: Relationship, *, message_length: float | None = None
    ) -> None:
        """Store ``state`` (insert or replace). ``message_length``, when given, is folded into the running mean
        ``avg_message_length`` over ``state.interaction_count`` exchanges (the exchange it belongs to counted).
        ``shared_references`` belongs to this repository: it is written whole."""
        at = state.last_interaction_at or utcnow()
        insert_ = insert_for(self.session, UserRelationship)
        statement = insert_.values(
            user_id=user_id,
            guild_id=guild_id,
            relationship_score=state.score,
            total_interactions=state.interaction_count,
            positive_interactions=state.positive_count,
            negative_interactions=state.negative_count,
            avg_message_length=0.0 if message_length is None else message_length,
            shared_references={"nicknames": list(state.nicknames), "inside_jokes": list(state.inside_jokes)},
            first_interaction_at=at,
            last_interaction_at=at,
        )
        changes: dict[str, Any] = {
            "relationship_score": statement.excluded.relationship_score,
            "total_interactions": statement.excluded.total_interactions,
            "positive_interactions": statement.excluded.positive_interactions,
            "negative_interactions": statement.excluded.negative_interactions,
            "shared_references": statement.excluded.shared_references,
            "updated_at": statement.excluded.updated_at,
        }
        if state.last_interaction_at is not None:
            changes["last_interaction_at"] = statement.excluded.last_interaction_at
        if message_length is not None:
            mean = UserRelationship.avg_message_length
            changes["avg_message_length"] = mean + (float(message_length) - mean) / float(
                max(state.interaction_count, 1)
            )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[UserRelationship.user_id, place_key(UserRelationship.guild_id)], set_=changes
            )
        )
