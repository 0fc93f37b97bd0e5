from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, TimestampMixin
from bot.db.models._columns import guild_fk
from bot.db.types import DiscordId


class ChannelCast(TimestampMixin, Base):
    """A character in a channel's cast (``/persona cast add``): it answers messages that name it or reply to it,
    through the channel's webhook. Deleted with the persona or the guild."""

    __tablename__ = "channel_casts"

    channel_id: Mapped[int] = mapped_column(DiscordId, primary_key=True, autoincrement=False)
    persona_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("personas.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    guild_id: Mapped[int] = guild_fk(nullable=False)
