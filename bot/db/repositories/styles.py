"""How each user writes: one communication style per user."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import UserCommunicationStyle
from bot.db.repositories._dialect import insert_for
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
        statement = select(*STYLE_COLUMNS).where(UserCommunicationStyle.user_id == user_id)
        row = (await self.session.execute(statement)).one_or_none()
        return None if row is None else style_of(row)

    async def save(self, user_id: int, style: CommunicationStyle) -> None:
        """Insert or replace the user's style. ``engagement_signals`` belongs to this repository (written whole)."""
        insert_ = insert_for(self.session, UserCommunicationStyle)
        statement = insert_.values(
            user_id=user_id,
            preferred_length=style.preferred_length,
            preferred_formality=style.formality,
            emoji_affinity=style.emoji_usage,
            humor_affinity=style.humor,
            detail_preference=style.detail,
            engagement_signals={"mean_words": style.mean_words},
            samples_collected=style.sample_count,
            confidence=style.confidence,
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[UserCommunicationStyle.user_id],
                set_={
                    name: statement.excluded[name]
                    for name in (
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
                },
            )
        )
