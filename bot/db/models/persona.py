from typing import Any

from sqlalchemy import Boolean, Index, false, func
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import guild_fk
from bot.db.types import CleanString, CleanText, PortableJSON


class Persona(IdMixin, TimestampMixin, Base):
    """A character Hearth plays. ``guild_id`` NULL: available everywhere.

    ``config`` may override the model, temperature and max tokens for this persona.
    """

    __tablename__ = "personas"

    name: Mapped[str] = mapped_column(CleanString(100), nullable=False)
    avatar_url: Mapped[str | None] = mapped_column(CleanString(2048))
    personality_prompt: Mapped[str] = mapped_column(CleanText, nullable=False)
    backstory: Mapped[str | None] = mapped_column(CleanText)
    greeting: Mapped[str | None] = mapped_column(CleanText)
    example_dialogue: Mapped[str | None] = mapped_column(CleanText)
    attributes: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict, server_default="{}", nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict, server_default="{}", nullable=False)
    guild_id: Mapped[int | None] = guild_fk()
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), nullable=False)


# At most one default persona per guild, and one global default.
Index(
    "uq_personas_default_per_guild",
    func.coalesce(Persona.guild_id, 0),
    unique=True,
    postgresql_where=Persona.is_default,
    sqlite_where=Persona.is_default,
)
