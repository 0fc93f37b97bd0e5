from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, TimestampMixin
from bot.db.models._columns import guild_fk
from bot.db.types import DiscordId


class ChannelPersona(TimestampMixin, Base):
    """A channel that plays another of its guild's personas than the guild's own (``/persona channel``).

    Deleting the persona or the guild deletes the choice: the channel goes back to the guild's persona."""

    __tablename__ = "channel_personas"

    channel_id: Mapped[int] = mapped_column(DiscordId, primary_key=True, autoincrement=False)
    guild_id: Mapped[int] = guild_fk(nullable=False)
    persona_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("personas.id", ondelete="CASCADE"), nullable=False, index=True
    )
