"""What Hearth learned about people: facts, their history, and the associations between members' facts.

A changed fact is never overwritten: the old row is superseded (inactive, ``valid_to`` set, pointing at its
successor) so history stays. Where a fact was learned is where it may be used (see :meth:`FactRepository.usable`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import FactAssociation, UserFact
from bot.db.repositories._dialect import insert_for
from bot.db.repositories._plain import execute_plain
from bot.db.types import FloatVector
from bot.domain.facts import StoredFact


@dataclass(frozen=True, slots=True)
class NewFact:
    user_id: int
    fact_type: str
    content: str
    scope: str  # dm | guild | global; 'guild' exactly when guild_id is set
    guild_id: int | None
    learned_at: datetime
    confidence: float = 0.8
    importance: float = 0.5
    temporal_relevance: str | None = None
    expiry_date: datetime | None = None
    source: str = "conversation"
    extracted_from_message_id: int | None = None
    extraction_context: str | None = None


_ROW_COLUMNS = (
    UserFact.id,
    UserFact.user_id,
    UserFact.fact_type,
    UserFact.fact_content,
    UserFact.confidence,
    UserFact.importance,
    UserFact.scope,
    UserFact.guild_id,
    UserFact.learned_at,
    UserFact.last_referenced_at,
    UserFact.expiry_date,
    UserFact.temporal_relevance,
    UserFact.is_active,
    UserFact.valid_to,
    UserFact.superseded_by,
    UserFact.source,
    UserFact.embedding,
)  # a StoredFact, in order


def _current(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """Active and not past its expiry."""
    return and_(UserFact.is_active.is_(True), or_(UserFact.expiry_date.is_(None), UserFact.expiry_date > now))


def _place(guild_id: int | BindParameter[int] | None) -> ColumnElement[bool]:
    """Facts that may be used in a guild (its own and global ones) or in DMs (DM and global ones)."""
    if guild_id is None:
        return UserFact.scope.in_(("dm", "global"))
    return or_(and_(UserFact.scope == "guild", UserFact.guild_id == guild_id), UserFact.scope == "global")


def _usable_statement(*, in_guild: bool) -> Select[*tuple[Any, ...]]:
    """:meth:`FactRepository.usable` for a guild or for DMs, built once: every reply reads it (parameters
    ``user_id``, ``guild_id``, ``now``)."""
    place = _place(bindparam("guild_id") if in_guild else None)
    return (
        select(*_ROW_COLUMNS)
        .where(UserFact.user_id == bindparam("user_id"), _current(bindparam("now")), place)
        .order_by(UserFact.learned_at, UserFact.id)
    )


_USABLE_IN_GUILD = _usable_statement(in_guild=True)
_USABLE_IN_DMS = _usable_statement(in_guild=False)


class FactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _rows(self, *conditions: ColumnElement[bool]) -> list[StoredFact]:
        statement = select(*_ROW_COLUMNS).where(*conditions).order_by(UserFact.learned_at, UserFact.id)
        return [StoredFact(*tuple(row)) for row in (await self.session.execute(statement)).all()]

    async def usable(self, user_id: int, *, guild_id: int | None, now: datetime) -> list[StoredFact]:
        """The user's current facts that may be used here (``guild_id`` None: in DMs), oldest first: in a
        guild, those learned in that guild and global ones; in DMs, DM and global ones. Never another
        guild's facts, never DM facts in a guild."""
        statement = _USABLE_IN_DMS if guild_id is None else _USABLE_IN_GUILD
        result = await execute_plain(self.session, statement, {"user_id": user_id, "guild_id": guild_id, "now": now})
        return [StoredFact(*tuple(row)) for row in result.all()]

    async def ended_here(self, user_id: int, *, guild_id: int | None, now: datetime) -> list[StoredFact]:
        """The user's facts learned here (``guild_id`` None: in DMs, see :meth:`usable`) that are no longer
        current and that nothing replaced: taken back, or past their expiry. Oldest first."""
        return await self._rows(
            UserFact.user_id == user_id,
            ~_current(now),
            UserFact.superseded_by.is_(None),
            _place(guild_id),
        )

    async def add(self, fact: NewFact, vector: FloatVector | None, model: str | None) -> int:
        """Insert a current fact (with its embedding, made by ``model``, when given); returns its id."""
        statement = (
            insert(UserFact)
            .values(
                user_id=fact.user_id,
                fact_type=fact.fact_type,
                fact_content=fact.content,
                confidence=fact.confidence,
                importance=fact.importance,
                scope=fact.scope,
                guild_id=fact.guild_id,
                learned_at=fact.learned_at,
                temporal_relevance=fact.temporal_relevance,
                expiry_date=fact.expiry_date,
                source=fact.source,
                extracted_from_message_id=fact.extracted_from_message_id,
                extraction_context=fact.extraction_context,
                embedding=vector,
                embedding_model=None if vector is None else model,
            )
            .returning(UserFact.id)
        )
        fact_id: int = (await self.session.execute(statement)).scalar_one()
        return fact_id

    async def refresh(self, fact_id: int, *, confidence: float, at: datetime) -> None:
        """The fact was said again (or used): new confidence, ``last_referenced_at`` = ``at``."""
        await self.session.execute(
            update(UserFact).where(UserFact.id == fact_id).values(confidence=confidence, last_referenced_at=at)
        )

    async def supersede(
        self, fact_id: int, *, at: datetime, by: int | None = None, retracted_in: int | None = None
    ) -> None:
        """End the fact at ``at``: replaced by fact ``by``, or retracted (``by`` None) in message ``retracted_in``
        (a ``messages.id``, where known). The row stays, as history."""
        await self.session.execute(
            update(UserFact)
            .where(UserFact.id == fact_id)
            .values(
                is_active=False,
                valid_to=at,
                superseded_by=by,
                retracted_by_message_id=retracted_in if by is None else None,
            )
        )

    async def forget_learned_from(self, message_ids: Sequence[int], *, now: datetime) -> int:
        """Delete the facts learned from these messages, current or past, with what hangs on them (their
        memories and associations, by cascade). A current fact among them that had replaced another brings
        that one back, unless it was learned from these messages too or has expired since: taking back "I
        moved to Lyon" leaves "lives in Paris" current again. So does a fact these messages took back: taking
        back "I quit smoking" leaves "smokes" current again. Returns how many facts went."""
        if not message_ids:
            return 0
        ids = list(message_ids)
        unexpired = or_(UserFact.expiry_date.is_(None), UserFact.expiry_date > now)
        learned = (
            await self.session.execute(
                select(UserFact.id, UserFact.is_active).where(UserFact.extracted_from_message_id.in_(ids))
            )
        ).all()
        doomed = [row.id for row in learned]
        await self.session.execute(
            update(UserFact)
            .where(
                UserFact.retracted_by_message_id.in_(ids),
                UserFact.superseded_by.is_(None),
                UserFact.id.not_in(doomed),
                unexpired,
            )
            .values(is_active=True, valid_to=None, retracted_by_message_id=None)
        )
        if not learned:
            return 0
        current = [row.id for row in learned if row.is_active]
        if current:
            await self.session.execute(
                update(UserFact)
                .where(UserFact.superseded_by.in_(current), UserFact.id.not_in(doomed), unexpired)
                .values(is_active=True, valid_to=None, superseded_by=None)
            )
        await self.session.execute(delete(UserFact).where(UserFact.id.in_(doomed)))
        return len(doomed)

    async def history(self, user_id: int) -> list[StoredFact]:
        """Every fact about the user, current or not, anywhere, oldest first."""
        return await self._rows(UserFact.user_id == user_id)

    async def expire(self, now: datetime) -> int:
        """End the active facts whose expiry date has come (``valid_to`` = their expiry); returns how many."""
        result = await self.session.execute(
            update(UserFact)
            .where(UserFact.is_active.is_(True), UserFact.expiry_date.is_not(None), UserFact.expiry_date <= now)
            .values(is_active=False, valid_to=UserFact.expiry_date)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def guild_facts_of_others(
        self, guild_id: int, user_id: int, types: Sequence[str], now: datetime
    ) -> list[StoredFact]:
        """Current facts of the given types that other members shared in this guild (never their DM or global
        facts), oldest first: what a shared interest is found among."""
        if not types:
            return []
        return await self._rows(
            UserFact.scope == "guild",
            UserFact.guild_id == guild_id,
            UserFact.fact_type.in_(types),
            UserFact.user_id != user_id,
            _current(now),
        )

    async def associate(self, fact_a: int, fact_b: int, *, kind: str, strength: float, at: datetime) -> None:
        """Record that two facts go together; stored once per pair (smaller id first), a repeat is ignored."""
        if fact_a == fact_b:
            raise ValueError(f"a fact cannot be associated with itself ({fact_a})")
        first, second = sorted((fact_a, fact_b))
        statement = (
            insert_for(self.session, FactAssociation)
            .values(fact_id_1=first, fact_id_2=second, association_type=kind, strength=strength, discovered_at=at)
            .on_conflict_do_nothing(index_elements=[FactAssociation.fact_id_1, FactAssociation.fact_id_2])
        )
        await self.session.execute(statement)

    async def associations_for(self, fact_ids: Sequence[int]) -> list[tuple[int, int, str, float]]:
        """Associations touching any of ``fact_ids``: (fact_id_1, fact_id_2, kind, strength), smaller id first."""
        if not fact_ids:
            return []
        statement = (
            select(
                FactAssociation.fact_id_1,
                FactAssociation.fact_id_2,
                FactAssociation.association_type,
                FactAssociation.strength,
            )
            .where(or_(FactAssociation.fact_id_1.in_(fact_ids), FactAssociation.fact_id_2.in_(fact_ids)))
            .order_by(FactAssociation.fact_id_1, FactAssociation.fact_id_2)
        )
        return [(int(a), int(b), str(kind), float(s)) for a, b, kind, s in (await self.session.execute(statement))]
