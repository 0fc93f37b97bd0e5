from sqlalchemy import BigInteger, CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import counter, guild_fk, user_fk
from bot.db.types import CleanString, CleanText

DOCUMENT_STATUSES = ("pending", "processing", "completed", "failed")


class KnowledgeDocument(IdMixin, TimestampMixin, Base):
    """Lore an admin uploaded for a guild. Its chunks live in ``memories`` with kind ``knowledge``."""

    __tablename__ = "knowledge_documents"

    guild_id: Mapped[int] = guild_fk(nullable=False)
    # The uploader is kept only as long as they are: erasing them unlinks, not deletes, the lore.
    uploaded_by_user_id: Mapped[int | None] = user_fk(nullable=True, on_delete="SET NULL")
    source_name: Mapped[str] = mapped_column(CleanString(255), nullable=False)
    mime_type: Mapped[str] = mapped_column(String(100), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(20), default="pending", server_default="pending", nullable=False)
    error_message: Mapped[str | None] = mapped_column(CleanText)
    chunk_count: Mapped[int] = counter()

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'processing', 'completed', 'failed')", name="status_valid"),
    )
