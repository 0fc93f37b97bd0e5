from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, true
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.types import CleanString, DiscordId, PortableJSON, UTCDateTime, utcnow


class Guild(IdMixin, TimestampMixin, Base):
    """A Discord server Hearth is in; ``settings`` holds what its admins configured."""

    __tablename__ = "guilds"

    discord_id: Mapped[int] = mapped_column(DiscordId, unique=True, nullable=False)
    name: Mapped[str] = mapped_column(CleanString(255), nullable=False)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true(), nullable=False)
    settings: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict, server_default="{}", nullable=False)
