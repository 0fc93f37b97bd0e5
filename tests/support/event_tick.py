"""One event tick in a process of its own, for the test that kills it mid-batch.

    python -m tests.support.event_tick DATABASE_URL RECORD_FILE NOW STALL_AFTER

Runs :meth:`EventService.tick` at ``NOW`` (ISO) on the database; its notifier appends each delivered event's
channel to ``RECORD_FILE`` (one line, written before ``deliver`` returns) and, from the ``STALL_AFTER``-th
delivery on, hangs right after recording it: delivered, not yet recorded as sent, as a process dies between
the two. The test kills it there.
"""

import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Literal

from bot.db.engine import Database
from bot.services.events import EventsConfig, EventService
from bot.services.personas import PersonaService
from tests.support.chat import chat_model


class StallingNotifier:
    def __init__(self, record: Path, stall_after: int) -> None:
        self.record = record.open("a", buffering=1)  # one line at a time, in the file before deliver returns
        self.stall_after = stall_after
        self.count = 0

    async def deliver(self, *, user_discord_id: int, channel_id: int | None, text: str) -> Literal["channel", "dm"]:
        self.record.write(f"{channel_id}\n")
        self.record.flush()
        self.count += 1
        if self.count >= self.stall_after:
            await asyncio.Event().wait()  # never set: killed here
        return "channel"


async def main(url: str, record: Path, now: datetime, stall_after: int) -> None:
    database = Database(url)
    config = EventsConfig(model="fake-model", claim_batch=200, concurrency=16, daily_cap=1000)
    model = chat_model("http://127.0.0.1:9", budget_s=0.5)  # reminders need no model
    events = EventService(
        database, model, PersonaService(database), StallingNotifier(record, stall_after), config, clock=lambda: now
    )
    await events.tick()
    raise SystemExit("the tick finished: it should have stalled")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), datetime.fromisoformat(sys.argv[3]), int(sys.argv[4])))
