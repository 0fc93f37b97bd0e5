from datetime import datetime

from sqlalchemy import CheckConstraint, Index, func
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import ONE_PLACE_CHECK, counter, guild_fk, real, user_fk
from bot.db.types import CleanString, CleanText, UTCDateTime, utcnow


class BotOpinion(IdMixin, TimestampMixin, Base):
    """What Hearth thinks of a topic in one place: a guild, or one user's DM (``dm_user_id``; see StatePlace).
    ``topic`` is lower-case. Who spoke in the talks a guild opinion was formed from is in bot_opinion_sources."""

    __tablename__ = "bot_opinions"

    guild_id: Mapped[int | None] = guild_fk()
    dm_user_id: Mapped[int | None] = user_fk(nullable=True)
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
        CheckConstraint(ONE_PLACE_CHECK, name="one_place"),
    )


Index(
    "uq_bot_opinions_place_topic",
    func.coalesce(BotOpinion.guild_id, 0),
    func.coalesce(BotOpinion.dm_user_id, 0),
    BotOpinion.topic,
    unique=True,
)
