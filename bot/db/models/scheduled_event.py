from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, IdMixin, TimestampMixin
from bot.db.models._columns import counter, guild_fk, user_fk
from bot.db.types import CleanString, CleanText, DiscordId, PortableJSON, UTCDateTime

# pending → triggered (claimed) → sending (committed just before the send) → sent; ``unknown`` when a send may
# have happened but was not recorded (never sent again); missed, cancelled, failed end an event unsent.
EVENT_STATUSES = ("pending", "triggered", "sending", "sent", "unknown", "cancelled", "missed", "failed")


class ScheduledEvent(IdMixin, TimestampMixin, Base):
    """Something Hearth will do at ``trigger_at``: a birthday, a follow-up, a reminder.

    This table is the source of truth for the scheduler: a row is claimed by moving it out of
    ``pending`` with a fresh ``claim_token``, so two processes never fire it twice, and a process changes only
    the rows it still holds.
    """

    __tablename__ = "scheduled_events"

    user_id: Mapped[int] = user_fk()
    guild_id: Mapped[int | None] = guild_fk()
    channel_id: Mapped[int | None] = mapped_column(DiscordId)
    event_type: Mapped[str] = mapped_column(String(50), nullable=False)
    trigger_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    title: Mapped[str] = mapped_column(CleanString(255), nullable=False)
    context: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict, server_default="{}", nullable=False)
    # True until its next occurrence is scheduled (then the next row carries the recurrence; the rule stays).
    is_recurring: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), nullable=False)
    recurrence_rule: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(
        String(20), default="pending", server_default="pending", nullable=False, index=True
    )
    triggered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = counter()
    last_error: Mapped[str | None] = mapped_column(CleanText)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    # What the model spent writing the message (a greeting, a follow-up; every attempt's, when a send was tried
    # again): counted as a reply's are, at ``triggered_at``. NULL when the model wrote nothing for it.
    model: Mapped[str | None] = mapped_column(String(255))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{status}'" for status in EVENT_STATUSES)), name="status_valid"
        ),
        Index("ix_scheduled_events_status_trigger_at", "status", "trigger_at"),
    )
