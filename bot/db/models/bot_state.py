from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, func
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import ONE_PLACE_CHECK, counter, guild_fk, real, user_fk
from bot.db.types import PortableJSON, UTCDateTime, utcnow


class BotState(IdMixin, TimestampMixin, Base):
    """Hearth's mood and counters in one place: a guild, or one user's DM (``dm_user_id``; see StatePlace)."""

    __tablename__ = "bot_states"

    guild_id: Mapped[int | None] = guild_fk(index=False)
    dm_user_id: Mapped[int | None] = user_fk(nullable=True)
    mood_valence: Mapped[float] = real(0.0)
    mood_arousal: Mapped[float] = real(0.0)
    mood_updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    total_messages_sent: Mapped[int] = counter()
    total_facts_learned: Mapped[int] = counter()
    total_users_known: Mapped[int] = counter()
    first_activated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    preferences: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict, server_default="{}", nullable=False)

    __table_args__ = (
        CheckConstraint("mood_valence BETWEEN -1 AND 1 AND mood_arousal BETWEEN -1 AND 1", name="mood_range"),
        CheckConstraint(ONE_PLACE_CHECK, name="one_place"),
    )


# One row per place (a guild, or one user's DM): NULL would not collide in a plain unique index.
Index("uq_bot_states_place", func.coalesce(BotState.guild_id, 0), func.coalesce(BotState.dm_user_id, 0), unique=True)
