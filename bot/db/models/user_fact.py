from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String, true
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import SCOPE_CHECK, guild_fk, real, user_fk
from bot.db.types import CleanText, Embedding, FloatVector, UTCDateTime, utcnow

FACT_TYPES = ("hobby", "work", "family", "preference", "location", "event", "relationship", "general")


class UserFact(IdMixin, TimestampMixin, Base):
    """Something Hearth learned about a user.

    A changed fact is not overwritten: the old row gets ``valid_to`` and ``superseded_by`` (the new
    row's id) and ``is_active`` false, so history stays and only current facts reach prompts.
    ``scope``/``guild_id`` record where it was learned, which is where it may be used.
    ``embedding`` (made by ``embedding_model``) lets a new fact be matched with the current ones it restates
    or contradicts. ``extracted_from_message_id`` is the message it was learned from (a ``messages.id``):
    deleting or editing that message on Discord forgets the fact. ``retracted_by_message_id`` is the message that
    took a fact back (``is_active`` false, nothing replacing it): deleting or editing that one makes it current again.
    """

    __tablename__ = "user_facts"

    user_id: Mapped[int] = user_fk()
    fact_type: Mapped[str] = mapped_column(String(50), nullable=False, index=True)
    fact_content: Mapped[str] = mapped_column(CleanText, nullable=False)
    confidence: Mapped[float] = real(0.8)
    source: Mapped[str] = mapped_column(
        String(50), default="conversation", server_default="conversation", nullable=False
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true(), nullable=False, index=True)
    learned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_referenced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    category: Mapped[str | None] = mapped_column(String(50))
    importance: Mapped[float] = real(0.5)
    temporal_relevance: Mapped[str | None] = mapped_column(String(20))
    expiry_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extracted_from_message_id: Mapped[int | None] = mapped_column(BigInteger, index=True)  # messages.id, no FK
    retracted_by_message_id: Mapped[int | None] = mapped_column(BigInteger, index=True)  # messages.id, no FK
    extraction_context: Mapped[str | None] = mapped_column(CleanText)
    scope: Mapped[str] = mapped_column(String(10), nullable=False)
    guild_id: Mapped[int | None] = guild_fk(index=False)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
    superseded_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("user_facts.id", ondelete="SET NULL"))
    embedding: Mapped[FloatVector | None] = mapped_column(Embedding)
    embedding_model: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        CheckConstraint(SCOPE_CHECK, name="scope_valid"),
        CheckConstraint("confidence BETWEEN 0 AND 1", name="confidence_range"),
        CheckConstraint("importance BETWEEN 0 AND 1", name="importance_range"),
        Index("ix_user_facts_user_id_scope", "user_id", "scope", "guild_id"),
        Index("ix_user_facts_guild_id_fact_type", "guild_id", "fact_type"),
    )
