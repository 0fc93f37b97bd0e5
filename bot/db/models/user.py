from datetime import datetime

from sqlalchemy import Boolean, true
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.types import CleanString, DiscordId, UTCDateTime, utcnow


class User(IdMixin, TimestampMixin, Base):
    """A Discord user Hearth has seen."""

    __tablename__ = "users"

    discord_id: Mapped[int] = mapped_column(DiscordId, unique=True, nullable=False)
    discord_username: Mapped[str] = mapped_column(CleanString(255), nullable=False)
    discord_display_name: Mapped[str | None] = mapped_column(CleanString(255))
    custom_name: Mapped[str | None] = mapped_column(CleanString(255))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False, index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true(), nullable=False)

    @property
    def display_name(self) -> str:
        return self.custom_name or self.discord_display_name or self.discord_username
