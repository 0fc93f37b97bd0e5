from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import SCOPE_CHECK, guild_fk, real, user_fk
from bot.db.types import CleanString, CleanText, DiscordId, Embedding, FloatVector, UTCDateTime, utcnow

MEMORY_KINDS = ("message", "summary", "fact", "knowledge")


class Memory(IdMixin, TimestampMixin, Base):
    """A piece of long-term memory: text, where it came from, and its embedding.

    ``scope``/``guild_id`` say where it may be recalled (see ARCHITECTURE: privacy scopes).
    ``embedding`` stays NULL until the embedding worker has run (a message's memory is written with the
    message, without a vector; the word search finds it at once); ``embedding_model`` names the model that
    made it, so a change of model is noticed. What is embedded and what is word-indexed are decided in
    ``bot/domain/memory_text.py``.
    """

    __tablename__ = "memories"

    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    content: Mapped[str] = mapped_column(CleanText, nullable=False)
    user_id: Mapped[int | None] = user_fk(nullable=True, index=False)
    guild_id: Mapped[int | None] = guild_fk(index=False)
    channel_id: Mapped[int | None] = mapped_column(DiscordId)
    channel_name: Mapped[str | None] = mapped_column(String(100))
    conversation_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("conversations.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    fact_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("user_facts.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("knowledge_documents.id", ondelete="CASCADE"), index=True
    )
    speaker_name: Mapped[str | None] = mapped_column(CleanString(255))
    # The turn a message answered: embedded with it, as an answer means little without its question.
    context: Mapped[str | None] = mapped_column(CleanText)
    # What the word search indexes (speaker, text, date); PostgreSQL derives a stored tsvector from it.
    search_text: Mapped[str] = mapped_column(CleanText, nullable=False, server_default="")
    scope: Mapped[str] = mapped_column(String(10), nullable=False)
    importance: Mapped[float] = real(0.5)
    emotional_weight: Mapped[float] = real(0.0)
    embedding: Mapped[FloatVector | None] = mapped_column(Embedding)
    embedding_model: Mapped[str | None] = mapped_column(String(255))
    last_accessed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    __table_args__ = (
        CheckConstraint("kind IN ('message', 'summary', 'fact', 'knowledge')", name="kind_valid"),
        CheckConstraint(SCOPE_CHECK, name="scope_valid"),
        CheckConstraint("importance BETWEEN 0 AND 1", name="importance_range"),
        CheckConstraint("emotional_weight BETWEEN -1 AND 1", name="emotional_weight_range"),
        Index("ix_memories_guild_id_kind", "guild_id", "kind"),
        Index("ix_memories_user_id_scope", "user_id", "scope"),
        Index("ix_memories_created_at", "created_at"),
        # A memory's neighbours in its conversation, in order (MemoryRepository.neighbours).
        Index("ix_memories_conversation_id_id", "conversation_id", "id"),
        # The rows the embedding worker has still to embed (bot/services/embedding_worker.py), oldest first.
        Index(
            "ix_memories_unembedded",
            "id",
            postgresql_where=text("embedding IS NULL"),
            sqlite_where=text("embedding IS NULL"),
        ),
    )
