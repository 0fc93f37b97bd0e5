"""Hearth and each user: the relationship, per guild (``guild_id`` NULL for DMs)."""

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Float, bindparam, case, cast, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import UserRelationship
from bot.db.repositories._dialect import dialect_name
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


@dataclass(frozen=True, slots=True)
class Exchange:
    """A relationship to store, and the mean length of the messages of the exchange that led to it (None: not
    an exchange; the running mean ``avg_message_length`` stays as it is)."""

    state: Relationship
    message_length: float | None = None


class RelationshipRepository:
    """Hearth and one user, per guild (``guild_id`` None: DMs)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int, guild_id: int | None) -> Relationship | None:
        return (await self.get_many([user_id], guild_id)).get(user_id)

    async def get_many(self, user_ids: Collection[int], guild_id: int | None) -> dict[int, Relationship]:
        """The relationships in the guild (None: DMs) of those of ``user_ids`` that have one."""
        statement = select(UserRelationship.user_id, *RELATIONSHIP_COLUMNS).where(
            UserRelationship.user_id.in_(sorted(user_ids)), in_place(UserRelationship.guild_id, guild_id)
        )
        return {row.user_id: relationship_of(row) for row in (await self.session.execute(statement)).all()}

    async def save(
        self, user_id: int, guild_id: int | None, state: Relationship, *, message_length: float | None = None
    ) -> None:
        await self.save_many(guild_id, {user_id: Exchange(state, message_length)})

    async def save_many(self, guild_id: int | None, exchanges: Mapping[int, Exchange]) -> None:
        """Store each user's relationship in the guild (insert or replace), in one prepared statement run for
        every row, in user order (two processes saving the same users lock them in the same order).

        A ``message_length`` is folded into the running mean ``avg_message_length`` over the state's
        ``interaction_count`` exchanges (the exchange it belongs to counted). ``shared_references`` belongs to
        this repository: it is written whole. ``last_interaction_at`` is kept when the state has none."""
        if not exchanges:
            return
        now = utcnow()
        rows = []
        for user_id, exchange in sorted(exchanges.items()):
            state = exchange.state
            at = state.last_interaction_at or now
            rows.append(
                {
                    "user_id": user_id,
                    "guild_id": guild_id,
                    "relationship_score": state.score,
                    "total_interactions": state.interaction_count,
                    "positive_interactions": state.positive_count,
                    "negative_interactions": state.negative_count,
                    "avg_message_length": exchange.message_length or 0.0,
                    "shared_references": {"nicknames": list(state.nicknames), "inside_jokes": list(state.inside_jokes)},
                    "first_interaction_at": at,
                    "last_interaction_at": at,
                    "interacted": state.last_interaction_at is not None,
                    "measured": exchange.message_length is not None,
                }
            )
        connection = await self.session.connection()  # no ORM bookkeeping (see _plain.py)
        await connection.execute(_UPSERT[dialect_name(self.session)], rows)


def _upsert(insert: Any) -> Any:
    """Insert a relationship, or replace it (see :meth:`RelationshipRepository.save_many`); built once per
    backend. ``interacted`` and ``measured`` say, per row, whether its last interaction and its message length
    are to be written."""
    statement = insert(UserRelationship.__table__)
    new = statement.excluded
    mean = UserRelationship.__table__.c.avg_message_length
    exchanges = cast(case((new.total_interactions > 1, new.total_interactions), else_=1), Float())
    return statement.on_conflict_do_update(
        index_elements=[UserRelationship.user_id, place_key(UserRelationship.guild_id)],
        set_={
            "relationship_score": new.relationship_score,
            "total_interactions": new.total_interactions,
            "positive_interactions": new.positive_interactions,
            "negative_interactions": new.negative_interactions,
            "shared_references": new.shared_references,
            "updated_at": new.updated_at,
            "last_interaction_at": case(
                (bindparam("interacted", type_=Boolean()), new.last_interaction_at),
                else_=UserRelationship.__table__.c.last_interaction_at,
            ),
            "avg_message_length": case(
                (bindparam("measured", type_=Boolean()), mean + (new.avg_message_length - mean) / exchanges),
                else_=mean,
            ),
        },
    )


_UPSERT = {"postgresql": _upsert(postgresql.insert), "sqlite": _upsert(sqlite.insert)}
