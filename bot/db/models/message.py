from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import user_fk
from bot.db.types import CleanString, CleanText, DiscordId, PortableJSON

ROLES = ("user", "assistant", "system")


class Message(IdMixin, TimestampMixin, Base):
    """One turn of a conversation.

    ``user_id`` is the person the turn belongs to: its author for ``role='user'``, the person being
    answered for ``role='assistant'``. So erasing a user also erases what Hearth said to them.
    Assistant turns carry their token usage, model and latency.
    """

    __tablename__ = "messages"

    conversation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[int | None] = user_fk(nullable=True)
    discord_message_id: Mapped[int | None] = mapped_column(DiscordId, index=True)
    # Every Discord message that shows a reply longer than one message, in order (the last one is
    # ``discord_message_id``); empty when one message shows it. No Python-side default: inserts leave it out (the
    # database's default), so they work before revision 0022; set apart from the insert (add_message).
    discord_part_ids: Mapped[list[Any]] = mapped_column(PortableJSON, server_default="[]", nullable=False)
    # The people's messages (``messages.id``) a reply answered, in order: what 🔄 asks the model again for. Empty for
    # people's messages, and for replies stored before revision 0023 (see AlternativeRepository.answered_by).
    answered_ids: Mapped[list[Any]] = mapped_column(PortableJSON, server_default="[]", nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    content: Mapped[str] = mapped_column(CleanText, nullable=False)
    # The cast character who said an assistant turn (``/persona cast``); NULL when Hearth spoke as its persona.
    # Set apart from the insert (ConversationRepository.add_message), which works before revision 0019.
    speaker_name: Mapped[str | None] = mapped_column(CleanString(100))
    has_images: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), nullable=False)
    image_urls: Mapped[list[Any]] = mapped_column(PortableJSON, default=list, server_default="[]", nullable=False)
    token_count: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(255))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    # A user's message Hearth means to answer, until its turn is over: what start-up catches up on.
    awaiting_reply: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), nullable=False)
    # A reply to messages that came while Hearth was stopped, given by the catch-up after the start: another answer
    # to it (🔄) is asked for as the first was, Hearth saying it was away. No Python-side default: inserts leave it
    # out (the database's default), so they work before revision 0025; set apart from the insert (add_message).
    was_away: Mapped[bool] = mapped_column(Boolean, server_default=false(), nullable=False)
    # A user's message whose images are still to be described for its memory (bot/services/image_describer.py).
    # No Python-side default: inserts leave it out (the database's default), so they work before revision 0017.
    images_pending: Mapped[bool] = mapped_column(Boolean, server_default=false(), nullable=False)

    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant', 'system')", name="role_valid"),
        Index("ix_messages_conversation_id_created_at", "conversation_id", "created_at"),
        Index("ix_messages_created_at", "created_at"),
        Index(
            "ix_messages_awaiting_reply",
            "created_at",
            postgresql_where=text("awaiting_reply"),
            sqlite_where=text("awaiting_reply = 1"),
        ),
        # A Discord message is one user turn: delivered again (a gateway replay, two processes), it is not kept
        # or answered twice (ConversationRepository.add_message). Hearth's replies may share theirs (alternatives).
        Index(
            "uq_messages_user_discord_message_id",
            "discord_message_id",
            unique=True,
            postgresql_where=text("role = 'user'"),
            sqlite_where=text("role = 'user'"),
        ),
        Index(
            "ix_messages_images_pending",
            "id",
            postgresql_where=text("images_pending"),
            sqlite_where=text("images_pending = 1"),
        ),
    )
