from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, func
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import counter, guild_fk, real, user_fk
from bot.db.types import PortableJSON, UTCDateTime, utcnow


class UserRelationship(IdMixin, TimestampMixin, Base):
    """How close Hearth is to a user in one guild (``guild_id`` NULL: DMs). Score 0–100."""

    __tablename__ = "user_relationships"

    user_id: Mapped[int] = user_fk()
    guild_id: Mapped[int | None] = guild_fk()
    relationship_score: Mapped[float] = real(0.0)
    total_interactions: Mapped[int] = counter()
    positive_interactions: Mapped[int] = counter()
    negative_interactions: Mapped[int] = counter()
    avg_message_length: Mapped[float] = real(0.0)
    conversation_depth_avg: Mapped[float] = real(0.0)
    shared_references: Mapped[dict[str, Any]] = mapped_column(
        PortableJSON, default=dict, server_default="{}", nullable=False
    )
    first_interaction_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_interaction_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    __table_args__ = (CheckConstraint("relationship_score BETWEEN 0 AND 100", name="score_range"),)


Index(
    "uq_user_relationships_user_id_guild_id",
    UserRelationship.user_id,
    func.coalesce(UserRelationship.guild_id, 0),
    unique=True,
)
