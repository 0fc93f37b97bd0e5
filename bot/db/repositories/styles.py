"""How each user writes: one communication style per user."""

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import UserCommunicationStyle
from bot.db.repositories._dialect import dialect_name
from bot.domain.style import TYPICAL_WORDS, CommunicationStyle

STYLE_COLUMNS = (
    UserCommunicationStyle.preferred_length,
    UserCommunicationStyle.engagement_signals,
    UserCommunicationStyle.preferred_formality,
    UserCommunicationStyle.emoji_affinity,
    UserCommunicationStyle.humor_affinity,
    UserCommunicationStyle.detail_preference,
    UserCommunicationStyle.samples_collected,
)


def style_of(row: Any) -> CommunicationStyle:
    """A row with ``STYLE_COLUMNS`` as a CommunicationStyle."""
    mean_words = (row.engagement_signals or {}).get("mean_words")
    if mean_words is None:  # only the label is known: start from a typical length for it
        mean_words = TYPICAL_WORDS.get(row.preferred_length, TYPICAL_WORDS["medium"])
    return CommunicationStyle(
        mean_words=float(mean_words),
        formality=row.preferred_formality,
        emoji_usage=row.emoji_affinity,
        humor=row.humor_affinity,
        detail=row.detail_preference,
        sample_count=row.samples_collected,
    )


class StyleRepository:
    """How each user writes (one row per user, wherever they write)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> CommunicationStyle | None:
        return (await self.get_many([user_id])).get(user_id)

    async def get_many(self, user_ids: Collection[int]) -> dict[int, CommunicationStyle]:
        """The styles of those of ``user_ids`` that have one."""
        statement = select(UserCommunicationStyle.user_id, *STYLE_COLUMNS).where(
            UserCommunicationStyle.user_id.in_(sorted(user_ids))
        )
        return {row.user_id: style_of(row) for row in (await self.session.execute(statement)).all()}

    async def hold_many(self, user_ids: Collection[int]) -> dict[int, CommunicationStyle]:
        """The styles of ``user_ids``, their rows locked until this transaction ends (those without one first get
        an untrained style, which reads as ``CommunicationStyle()``), in user order: another transaction learning
        how they write waits, then reads what this one wrote (on SQLite the insert takes the write lock)."""
        if not user_ids:
            return {}
        connection = await self.session.connection()  # no ORM bookkeeping (see _plain.py)
        untrained = [_row(user_id, CommunicationStyle()) for user_id in sorted(user_ids)]
        await connection.execute(_INSERT[dialect_name(self.session)], untrained)
        statement = (
            select(UserCommunicationStyle.user_id, *STYLE_COLUMNS)
            .where(UserCommunicationStyle.user_id.in_(sorted(user_ids)))
            .order_by(UserCommunicationStyle.user_id)
            .with_for_update()
        )
        return {row.user_id: style_of(row) for row in (await self.session.execute(statement)).all()}

    async def save(self, user_id: int, style: CommunicationStyle) -> None:
        await self.save_many({user_id: style})

    async def save_many(self, styles: Mapping[int, CommunicationStyle]) -> None:
        """Insert or replace each user's style, in one prepared statement run for every row (in user order, so
        two processes saving the same users lock them in the same order). ``engagement_signals`` belongs to this
        repository (written whole)."""
        if not styles:
            return
        rows = [_row(user_id, style) for user_id, style in sorted(styles.items())]
        connection = await self.session.connection()  # no ORM bookkeeping (see _plain.py)
        await connection.execute(_UPSERT[dialect_name(self.session)], rows)


def _row(user_id: int, style: CommunicationStyle) -> dict[str, Any]:
    """The columns of a user's style."""
    return {
        "user_id": user_id,
        "preferred_length": style.preferred_length,
        "preferred_formality": style.formality,
        "emoji_affinity": style.emoji_usage,
        "humor_affinity": style.humor,
        "detail_preference": style.detail,
        "engagement_signals": {"mean_words": style.mean_words},
        "samples_collected": style.sample_count,
        "confidence": style.confidence,
    }


def _upsert(insert: Any) -> Any:
    """Insert a user's style, or replace every column of it but the user (built once per backend)."""
    statement = insert(UserCommunicationStyle.__table__)
    replaced = (
        "preferred_length",
        "preferred_formality",
        "emoji_affinity",
        "humor_affinity",
        "detail_preference",
        "engagement_signals",
        "samples_collected",
        "confidence",
        "updated_at",
    )
    return statement.on_conflict_do_update(
        index_elements=[UserCommunicationStyle.user_id], set_={name: statement.excluded[name] for name in replaced}
    )


_UPSERT = {"postgresql": _upsert(postgresql.insert), "sqlite": _upsert(sqlite.insert)}


# A style for each user who has none yet (see StyleRepository.hold_many).
def _insert_untrained(insert: Any) -> Any:
    """Insert a user's style unless they have one (built once per backend)."""
    statement = insert(UserCommunicationStyle.__table__)
    return statement.on_conflict_do_nothing(index_elements=[UserCommunicationStyle.user_id])


_INSERT = {"postgresql": _insert_untrained(postgresql.insert), "sqlite": _insert_untrained(sqlite.insert)}
