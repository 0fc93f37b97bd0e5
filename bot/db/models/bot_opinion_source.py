from sqlalchemy import BigInteger, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, CreatedAtMixin, IdMixin
from bot.db.models._columns import user_fk


class BotOpinionSource(IdMixin, CreatedAtMixin, Base):
    """Someone who spoke in a talk a guild opinion was formed or reinforced from: its topic may be their words,
    so erasing them erases the opinion (see PrivacyService.forget_everything)."""

    __tablename__ = "bot_opinion_sources"

    opinion_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bot_opinions.id", ondelete="CASCADE"), nullable=False, index=False
    )
    user_id: Mapped[int] = user_fk()

    __table_args__ = (UniqueConstraint("opinion_id", "user_id"),)
