"""The scheduler's jobs while the database is unreachable (a restart, a failover), on a PostgreSQL server of the
test's own: they keep running, and the log says so without a traceback at every run."""

import asyncio
import logging
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from bot.db.engine import Database
from bot.db.models import UserDailyTokenUsage
from bot.db.repositories.conversations import ConversationRepository
from bot.db.repositories.users import UserRepository
from bot.domain.retry import Backoff
from bot.scheduler import IntervalJob, Scheduler
from bot.services.maintenance import Maintenance, MaintenanceConfig
from bot.services.memory import MemoryService
from bot.services.personas import PersonaService
from bot.services.summaries import ConversationSummaries, SummaryConfig
from tests.fakes.llm_server import FakeLLM
from tests.support.chat import chat_model, eventually
from tests.support.embedding import shared_embedder
from tests.support.events import NOW, Clock, RecordingNotifier, service
from tests.support.postgres import OwnPostgres


async def reply_yesterday(db: Database) -> None:
    """A reply of the model to Ana, yesterday (UTC), with its tokens."""
    at = datetime.combine(datetime.now(UTC).date() - timedelta(days=1), time(12), tzinfo=UTC)
    async with db.session() as session:
        user = await UserRepository(session).upsert(discord_id=11, username="ana", display_name="Ana", seen_at=at)
        conversations = ConversationRepository(session)
        conversation = await conversations.open(channel_id=700, guild_id=None, user_id=user.id, at=at)
        await conversations.add_message(
            conversation_id=conversation.id,
            user_id=user.id,
            role="assistant",
            content="Hello, Ana.",
            at=at,
            prompt_tokens=120,
            completion_tokens=8,
            model="fake-model",
        )


async def users_counted(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(UserDailyTokenUsage)) or 0)


async def maintenance_of(db: Database, llm: FakeLLM) -> Maintenance:
    personas = PersonaService(db)
    memory = MemoryService(db, await shared_embedder())
    summaries = ConversationSummaries(db, chat_model(llm.base_url), memory, personas, SummaryConfig("fake-model"))
    return Maintenance(db, personas, summaries, MaintenanceConfig())


async def test_the_events_job_says_once_that_the_database_is_down_and_once_that_it_is_back(
    own_server: OwnPostgres, own_db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.scheduler")
    name = own_db.url.database
    assert name is not None
    events = service(own_db, llm, RecordingNotifier(), Clock(NOW))
    runs = {"ok": 0, "failed": 0}

    async def tick() -> None:  # as the bot's "scheduled-events" job, counting how its runs end
        try:
            await events.tick(unsolicited=False)
        except Exception:
            runs["failed"] += 1
            raise
        runs["ok"] += 1

    scheduler = Scheduler([IntervalJob("scheduled-events", tick, timedelta(seconds=0.1), first_after=timedelta(0))])
    scheduler.start()
    try:
        await eventually(lambda: runs["ok"] >= 1)
        async with own_server.unreachable(name):
            await eventually(lambda: runs["failed"] >= 5, timeout_s=30)
            said_while_down = [record for record in caplog.records if record.name == "bot.scheduler"]
        await eventually(lambda: any(r.name == "bot.scheduler" and r.levelno == logging.INFO for r in caplog.records))
    finally:
        await scheduler.stop()

    assert [record.levelno for record in said_while_down] == [logging.WARNING]
    assert said_while_down[0].exc_info is None and "database" in said_while_down[0].getMessage()
    said = [record for record in caplog.records if record.name == "bot.scheduler"]
    assert [record.levelno for record in said] == [logging.WARNING, logging.INFO]
    assert "again" in said[-1].getMessage() and runs["ok"] >= 2


async def test_a_daily_job_the_database_failed_runs_again_soon_not_a_day_later(
    own_server: OwnPostgres, own_db: Database, llm: FakeLLM
) -> None:
    """The daily token roll-up meets the database restarting: it runs again once the database is back, so
    yesterday is counted today rather than never (the next day's run counts the next day)."""
    name = own_db.url.database
    assert name is not None
    await reply_yesterday(own_db)
    maintenance = await maintenance_of(own_db, llm)
    runs = {"ok": 0, "failed": 0}

    async def roll_up() -> None:
        try:
            await maintenance.roll_up_tokens()
        except Exception:
            runs["failed"] += 1
            raise
        runs["ok"] += 1

    job = IntervalJob("token-roll-up", roll_up, timedelta(days=1), first_after=timedelta(0))
    scheduler = Scheduler([job], retry=Backoff(base_s=0.2, cap_s=0.2, jitter=0))
    try:
        async with own_server.unreachable(name):
            scheduler.start()
            await eventually(lambda: runs["failed"] >= 1, timeout_s=30)
        await eventually(lambda: runs["ok"] >= 1, timeout_s=30)
    finally:
        await scheduler.stop()
    assert await users_counted(own_db) == 1


async def test_a_stop_lets_a_running_job_finish_before_it_ends_the_scheduler() -> None:
    """A job running as Hearth stops (a reminder being sent, a roll-up being committed) is given the stop's wait to
    finish, and no new run starts meanwhile."""
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def sending() -> None:
        started.set()
        await release.wait()
        finished.append("sent")

    scheduler = Scheduler([IntervalJob("sending", sending, timedelta(milliseconds=10), first_after=timedelta(0))])
    scheduler.start()
    await asyncio.wait_for(started.wait(), 10)
    stopping = asyncio.create_task(scheduler.stop(timeout_s=10))
    await asyncio.sleep(0.2)  # the stop waits: runs would come every 10 ms if it let them
    release.set()
    await asyncio.wait_for(stopping, 10)
    assert finished == ["sent"]


async def test_a_job_the_stop_cuts_short_is_said_in_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A job still running when the stop's wait is over is cancelled: one line says so, and APScheduler does not log
    the cancellation as the job's failure (a traceback at every stop that catches a job mid-run)."""
    caplog.set_level(logging.INFO)
    started, ended = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # a model call or a commit that outlasts the stop's wait
        finally:
            ended.set()

    scheduler = Scheduler([IntervalJob("slow", slow, timedelta(hours=1), first_after=timedelta(0))])
    scheduler.start()
    await asyncio.wait_for(started.wait(), 10)
    await scheduler.stop(timeout_s=0.05)
    await asyncio.wait_for(ended.wait(), 10)
    await asyncio.sleep(0.05)  # APScheduler's callback on the job's end runs on the next turns of the loop
    assert not [r.getMessage() for r in caplog.records if r.exc_info], "no traceback"
    said = [r.getMessage() for r in caplog.records if r.name == "bot.scheduler"]
    assert said == ["scheduled job slow was cut short by the stop"]
