from datetime import date

from sqlalchemy import Date, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import counter, guild_fk, user_fk


class _DailyTokens:
    day: Mapped[date] = mapped_column(Date, nullable=False)
    model: Mapped[str] = mapped_column(String(255), nullable=False)
    requests: Mapped[int] = counter()
    prompt_tokens: Mapped[int] = counter()
    completion_tokens: Mapped[int] = counter()


class UserDailyTokenUsage(IdMixin, _DailyTokens, TimestampMixin, Base):
    """Tokens spent answering one user on one (UTC) day, per model."""

    __tablename__ = "user_daily_token_usage"

    user_id: Mapped[int] = user_fk()

    __table_args__ = (UniqueConstraint("day", "user_id", "model"),)


class GuildDailyTokenUsage(IdMixin, _DailyTokens, TimestampMixin, Base):
    """Tokens spent in one guild on one (UTC) day, per model: what the daily quota counts."""

    __tablename__ = "guild_daily_token_usage"

    guild_id: Mapped[int] = guild_fk(nullable=False)

    __table_args__ = (UniqueConstraint("day", "guild_id", "model"),)
