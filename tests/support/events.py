"""Scheduled events in tests: a notifier that records (or fails as scripted), a settable clock, a user with
preferences, and the event service wired to the fake LLM."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any, Literal

from sqlalchemy import select

from bot.db.engine import Database
from bot.db.models import ScheduledEvent
from bot.db.repositories.events import EventRepository
from bot.db.repositories.users import UserRepository
from bot.domain.retry import Backoff
from bot.services.events import DeliveryFailed, EventsConfig, EventService
from bot.services.personas import PersonaService
from tests.fakes.llm_server import FakeLLM
from tests.support.chat import chat_model

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass
class RecordingNotifier:
    sent: list[tuple[int, int | None, str]] = field(default_factory=list)
    failures: list[DeliveryFailed] = field(default_factory=list)  # raised, in order, before anything is sent

    async def deliver(self, *, user_discord_id: int, channel_id: int | None, text: str) -> Literal["channel", "dm"]:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((user_discord_id, channel_id, text))
        return "channel" if channel_id else "dm"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def ana(db: Database, *, tz: str = "UTC", quiet: tuple[time, time] | None = None, opt_out: bool = False) -> int:
    async with db.session() as session:
        users = UserRepository(session)
        user = await users.upsert(discord_id=11, username="ana", display_name="Ana", seen_at=NOW)
        preferences = await users.preferences(user.id)
        preferences.timezone = tz
        preferences.proactive_opt_out = opt_out
        if quiet:
            preferences.quiet_hours_start, preferences.quiet_hours_end = quiet
        return user.id


async def add(
    db: Database,
    user_id: int,
    kind: str,
    at: datetime,
    title: str,
    *,
    guild_id: int | None = None,
    context: dict[str, Any] | None = None,
    recurrence_rule: str | None = None,
) -> int:
    async with db.session() as session:
        return await EventRepository(session).add(
            user_id=user_id,
            guild_id=guild_id,
            channel_id=None,
            event_type=kind,
            trigger_at=at,
            title=title,
            context=context,
            recurrence_rule=recurrence_rule,
        )


async def rows(db: Database) -> list[ScheduledEvent]:
    async with db.session() as session:
        return list((await session.scalars(select(ScheduledEvent).order_by(ScheduledEvent.id))).all())


def service(
    db: Database, llm: FakeLLM, notifier: RecordingNotifier, clock: Clock, *, timeout_s: float = 2.0, **config: object
) -> EventService:
    settings = EventsConfig(model="fake-model", retry_backoff=Backoff(base_s=60, cap_s=60, jitter=0), **config)  # type: ignore[arg-type]
    model = chat_model(llm.base_url, budget_s=0.5, timeout_s=timeout_s)
    return EventService(db, model, PersonaService(db), notifier, settings, clock=clock)
