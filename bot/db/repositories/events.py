"""Scheduled events: what Hearth will do later (follow-ups now; birthdays and reminders use the same table)."""

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import ScheduledEvent


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_follow_up(
        self,
        *,
        user_id: int,
        guild_id: int | None,
        channel_id: int | None,
        topic: str,
        question: str,
        trigger_at: datetime,
        context: dict[str, Any] | None = None,
    ) -> int | None:
        """A pending follow-up on ``topic`` for the user; None when one on that topic is pending already."""
        topic = " ".join(topic.split()).lower()
        pending = select(ScheduledEvent.id).where(
            ScheduledEvent.user_id == user_id,
            ScheduledEvent.event_type == "follow_up",
            ScheduledEvent.status == "pending",
            func.lower(ScheduledEvent.title) == topic,
        )
        if await self.session.scalar(pending.limit(1)) is not None:
            return None
        event = ScheduledEvent(
            user_id=user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            event_type="follow_up",
            trigger_at=trigger_at,
            title=topic,
            context={"question": question, **(context or {})},
        )
        self.session.add(event)
        await self.session.flush()
        return event.id

    async def pending(self, user_id: int, *, event_type: str | None = None) -> list[ScheduledEvent]:
        statement = select(ScheduledEvent).where(ScheduledEvent.user_id == user_id, ScheduledEvent.status == "pending")
        if event_type is not None:
            statement = statement.where(ScheduledEvent.event_type == event_type)
        return list((await self.session.scalars(statement.order_by(ScheduledEvent.trigger_at))).all())
