from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import guild_fk, user_fk
from bot.db.types import CleanString, PortableJSON, UTCDateTime


class GuildMember(IdMixin, TimestampMixin, Base):
    """A user's membership of a guild. ``roles`` is a JSON list of role names (portable, unlike TEXT[])."""

    __tablename__ = "guild_members"

    guild_id: Mapped[int] = guild_fk(nullable=False)
    user_id: Mapped[int] = user_fk()
    guild_nickname: Mapped[str | None] = mapped_column(CleanString(255))
    roles: Mapped[list[str]] = mapped_column(PortableJSON, default=list, server_default="[]", nullable=False)
    joined_guild_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("guild_id", "user_id"),)
