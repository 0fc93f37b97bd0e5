from datetime import datetime

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import guild_fk, user_fk
from bot.db.types import CleanText, UTCDateTime, utcnow


class MoodHistory(IdMixin, TimestampMixin, Base):
    """A significant change of mood, and what caused it."""

    __tablename__ = "mood_history"

    guild_id: Mapped[int | None] = guild_fk()
    valence: Mapped[float] = mapped_column(Float, nullable=False)
    arousal: Mapped[float] = mapped_column(Float, nullable=False)
    trigger_type: Mapped[str] = mapped_column(String(50), nullable=False)
    trigger_user_id: Mapped[int | None] = user_fk(nullable=True)
    trigger_description: Mapped[str | None] = mapped_column(CleanText)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False, index=True)
