from datetime import datetime

from sqlalchemy import CheckConstraint, Index, func
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import counter, guild_fk, real
from bot.db.types import CleanString, CleanText, UTCDateTime, utcnow


class BotOpinion(IdMixin, TimestampMixin, Base):
    """What Hearth thinks of a topic in one guild (``guild_id`` NULL: DMs). ``topic`` is lower-case."""

    __tablename__ = "bot_opinions"

    guild_id: Mapped[int | None] = guild_fk()
    topic: Mapped[str] = mapped_column(CleanString(255), nullable=False, index=True)
    sentiment: Mapped[float] = real(0.0)
    interest_level: Mapped[float] = real(0.5)
    discussion_count: Mapped[int] = counter()
    reasoning: Mapped[str | None] = mapped_column(CleanText)
    formed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_reinforced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    __table_args__ = (
        CheckConstraint("sentiment BETWEEN -1 AND 1", name="sentiment_range"),
        CheckConstraint("interest_level BETWEEN 0 AND 1", name="interest_range"),
    )


Index("uq_bot_opinions_guild_id_topic", func.coalesce(BotOpinion.guild_id, 0), BotOpinion.topic, unique=True)
