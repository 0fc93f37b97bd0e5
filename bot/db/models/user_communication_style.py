from typing import Any

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import counter, real, user_fk
from bot.db.types import PortableJSON


class UserCommunicationStyle(IdMixin, TimestampMixin, Base):
    """How a user writes, learned from their messages; affinities are 0–1."""

    __tablename__ = "user_communication_styles"

    user_id: Mapped[int] = user_fk(unique=True)
    preferred_length: Mapped[str] = mapped_column(String(20), default="medium", server_default="medium", nullable=False)
    preferred_formality: Mapped[float] = real(0.5)
    emoji_affinity: Mapped[float] = real(0.5)
    humor_affinity: Mapped[float] = real(0.5)
    detail_preference: Mapped[float] = real(0.5)
    engagement_signals: Mapped[dict[str, Any]] = mapped_column(
        PortableJSON, default=dict, server_default="{}", nullable=False
    )
    samples_collected: Mapped[int] = counter()
    confidence: Mapped[float] = real(0.0)

    __table_args__ = (
        CheckConstraint("preferred_length IN ('short', 'medium', 'long')", name="length_valid"),
        CheckConstraint("confidence BETWEEN 0 AND 1", name="confidence_range"),
    )
