from datetime import datetime

from sqlalchemy import CheckConstraint, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import ONE_PLACE_CHECK, guild_fk, user_fk
from bot.db.types import CleanText, UTCDateTime, utcnow


class MoodHistory(IdMixin, TimestampMixin, Base):
    """A significant change of mood in one place (a guild, or one user's DM), and what caused it."""

    __tablename__ = "mood_history"

    guild_id: Mapped[int | None] = guild_fk()
    dm_user_id: Mapped[int | None] = user_fk(nullable=True)
    valence: Mapped[float] = mapped_column(Float, nullable=False)
    arousal: Mapped[float] = mapped_column(Float, nullable=False)
    trigger_type: Mapped[str] = mapped_column(String(50), nullable=False)
    trigger_user_id: Mapped[int | None] = user_fk(nullable=True)
    trigger_description: Mapped[str | None] = mapped_column(CleanText)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False, index=True)

    __table_args__ = (CheckConstraint(ONE_PLACE_CHECK, name="one_place"),)
