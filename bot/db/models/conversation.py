from datetime import datetime

from sqlalchemy import BigInteger, Boolean, true
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import counter, guild_fk, user_fk
from bot.db.types import DiscordId, UTCDateTime, utcnow


class Conversation(IdMixin, TimestampMixin, Base):
    """A stretch of talk in one channel; a new one starts after an idle gap.

    In a guild a conversation belongs to the channel (``user_id`` is NULL: many people talk in it);
    in a DM it belongs to that one user, so erasing them erases it. ``learned_message_id`` is the last of
    its messages the learner has handled (NULL: none), where it resumes after a restart.
    """

    __tablename__ = "conversations"

    user_id: Mapped[int | None] = user_fk(nullable=True)
    guild_id: Mapped[int | None] = guild_fk()
    channel_id: Mapped[int] = mapped_column(DiscordId, nullable=False, index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False, index=True)
    message_count: Mapped[int] = counter()
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true(), nullable=False, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    learned_message_id: Mapped[int | None] = mapped_column(BigInteger)
