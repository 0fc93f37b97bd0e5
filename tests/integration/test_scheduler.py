"""The scheduler's jobs while the database is unreachable (a restart, a failover), on a PostgreSQL server of the
test's own: they keep running, and the log says so without a traceback at every run."""

import logging
from datetime import timedelta

import pytest

from bot.db.engine import Database
from bot.scheduler import IntervalJob, Scheduler
from tests.fakes.llm_server import FakeLLM
from tests.support.chat import eventually
from tests.support.events import NOW, Clock, RecordingNotifier, service
from tests.support.postgres import OwnPostgres


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
