from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.types import CleanText


class ReplyAlternative(IdMixin, TimestampMixin, Base):
    """One of the answers the model gave for a turn Hearth was asked to regenerate (🔄), the first included.

    The turn's ``messages`` row always holds the alternative shown last (``is_shown``): that is what the
    conversation continues from. The others are kept here as branches of the turn. Deleted with the turn's
    message, so with the person it answered."""

    __tablename__ = "reply_alternatives"

    message_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)  # 1: the first answer, in the order asked
    content: Mapped[str] = mapped_column(CleanText, nullable=False)
    model: Mapped[str | None] = mapped_column(String(255))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    is_shown: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), nullable=False)

    __table_args__ = (UniqueConstraint("message_id", "position"),)
