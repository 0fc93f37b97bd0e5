"""Proactive messages are delivered at most once across faults and restarts: a database fault at the mark after
a send, two processes sharing the work, a process killed mid-batch. Deliveries are counted per event (each
event names its own channel), never inferred from the database alone."""

import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.db.engine import Database
from bot.db.errors import StorageError
from bot.db.repositories.events import EventRepository
from bot.db.repositories.users import UserRepository
from bot.services.events import DeliveryFailed
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.database_faults import failing_statements
from tests.support.event_faults import MarkFaults, failing_marks
from tests.support.events import NOW, Clock, RecordingNotifier, add, ana, rows, service
from tests.support.postgres import OwnPostgres

ROOT = Path(__file__).resolve().parents[3]
FIRST_CHANNEL = 40_000_000  # event i is sent to its own channel, so each delivery names its event
STUCK = timedelta(minutes=10)


def delivered(*notifiers: RecordingNotifier) -> Counter[int]:
    """How many times each event (by its channel) was delivered."""
    return Counter(channel for notifier in notifiers for _, channel, _ in notifier.sent if channel is not None)


async def due_events(db: Database, count: int, *, users: int = 1) -> dict[int, int]:
    """``count`` due events (one in five a follow-up, the rest reminders) spread over ``users`` users, each with
    its own channel; returns channel → event id."""
    async with db.session() as session:
        people = [
            (
                await UserRepository(session).upsert(
                    discord_id=500 + number, username=f"u{number}", display_name=None, seen_at=NOW
                )
            ).id
            for number in range(users)
        ]
        repository = EventRepository(session)
        return {
            FIRST_CHANNEL + number: await repository.add(
                user_id=people[number % users],
                guild_id=None,
                channel_id=FIRST_CHANNEL + number,
                event_type="follow_up" if number % 5 == 0 else "reminder",
                trigger_at=NOW - timedelta(seconds=number),
                title=f"task {number}",
                context={"question": f"How did task {number} go?"},
            )
            for number in range(count)
        }


async def test_a_failed_mark_after_the_send_never_sends_again(db: Database, llm: FakeLLM) -> None:
    """The statement that records a send fails (for some events every time, for others once): the delivered
    events end sent or unknown, and no later tick, even past stuck_after, sends one again."""
    channels = await due_events(db, 30)
    ids = sorted(channels.values())
    faults = MarkFaults(always=ids[::5], once=ids[1::5])
    notifier, clock = RecordingNotifier(), Clock(NOW)
    events = service(db, llm, notifier, clock, claim_batch=12, daily_cap=100)
    with failing_marks(db, faults):
        await events.tick()
    assert set(faults.failed) >= set(faults.always)
    clock.now += STUCK + timedelta(minutes=1)
    await events.tick()
    await events.tick()

    counts = delivered(notifier)
    assert set(counts) == set(channels) and max(counts.values()) == 1  # every event once, none twice
    states = {row.id: (row.status, row.last_error) for row in await rows(db)}
    assert {event_id for event_id, (status, _) in states.items() if status == "unknown"} == set(faults.always)
    assert all(str(states[event_id][1]).startswith("delivery uncertain") for event_id in faults.always)
    assert all(states[event_id][0] == "sent" for event_id in set(ids) - set(faults.always))


async def test_a_failed_mark_before_the_send_sends_nothing_then_once_at_the_next_tick(
    db: Database, llm: FakeLLM
) -> None:
    """The statement that marks an event as being sent fails: it is not sent, and the next tick puts it back,
    claims it again and sends it, once."""
    channels = await due_events(db, 12)
    ids = sorted(channels.values())
    notifier, clock = RecordingNotifier(), Clock(NOW)
    events = service(db, llm, notifier, clock, daily_cap=100)
    with failing_marks(db, MarkFaults(always=ids[::3], status="sending")):
        await events.tick()
        assert len(delivered(notifier)) == 8
        assert {row.id for row in await rows(db) if row.status == "triggered"} == set(ids[::3])
    clock.now += timedelta(seconds=1)
    assert await events.tick() == {"sent": 4}
    assert await events.tick() == {}
    counts = delivered(notifier)
    assert set(counts) == set(channels) and max(counts.values()) == 1
    assert {row.status for row in await rows(db)} == {"sent"}


async def test_two_schedulers_with_a_dropping_connection_deliver_each_of_120_events_once(
    pg: Database, llm: FakeLLM
) -> None:
    """Two event services (two processes' engines) on one PostgreSQL; the connection marking every fourth
    event sent drops each time, the next one's drops once. Then time passes stuck_after and both tick again."""
    channels = await due_events(pg, 120, users=6)
    not_due = await add(pg, (await ana(pg)), "reminder", NOW + timedelta(hours=1), "later")
    cancelled = await add(pg, (await ana(pg)), "reminder", NOW - timedelta(minutes=1), "cancelled")
    async with pg.session() as session:
        assert await EventRepository(session).cancel(cancelled)
    ids = sorted(channels.values())
    faults = MarkFaults(always=ids[::4], once=ids[1::4])
    llm.default = Reply("Hello again!")
    first, second = RecordingNotifier(), RecordingNotifier()
    clock = Clock(NOW)
    async with _engine(pg) as one, _engine(pg) as other:
        schedulers = [
            service(database, llm, notifier, clock, claim_batch=9, daily_cap=1000)
            for database, notifier in ((one, first), (other, second))
        ]
        with failing_marks(one, faults), failing_marks(other, faults):
            await asyncio.gather(*(scheduler.tick() for scheduler in schedulers))
        assert set(faults.failed) >= set(faults.always)
        clock.now += STUCK + timedelta(minutes=1)
        await asyncio.gather(*(scheduler.tick() for scheduler in schedulers))
        await asyncio.gather(*(scheduler.tick() for scheduler in schedulers))

    counts = delivered(first, second)
    assert set(counts) == set(channels), "none delivered that should not be, none left out"
    assert [channel for channel, times in counts.items() if times > 1] == []
    assert first.sent and second.sent
    states = Counter(row.status for row in await rows(pg) if row.id in set(ids))
    assert states == {"sent": 90, "unknown": 30}  # delivered once; 30 of them could not be recorded
    assert {row.id: row.status for row in await rows(pg) if row.id in (not_due, cancelled)} == {
        not_due: "pending",
        cancelled: "cancelled",
    }


async def test_a_process_killed_mid_batch_never_causes_a_second_delivery(
    pg: Database, llm: FakeLLM, tmp_path: Path
) -> None:
    """A real process ticks 120 due events (reminders and follow-ups) and is SIGKILLed while its notifier hangs
    after a delivery; ticks after stuck_after deliver every event that had not started sending, and none twice."""
    channels = await due_events(pg, 120)
    record = tmp_path / "delivered.txt"
    record.touch()
    stall_after = 40
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.event_tick",
        pg.url.render_as_string(hide_password=False),
        str(record),
        NOW.isoformat(),
        str(stall_after),
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(120):  # a guard against a hang, not a timed assertion
            while len(record.read_text().split()) < stall_after:
                if child.returncode is not None:
                    assert child.stderr is not None
                    raise AssertionError((await child.stderr.read()).decode())
                await asyncio.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    before = Counter(int(line) for line in record.read_text().split())
    assert max(before.values()) == 1 and len(before) >= stall_after

    notifier = RecordingNotifier()
    clock = Clock(NOW + STUCK + timedelta(minutes=1))
    events = service(pg, llm, notifier, clock, daily_cap=1000)
    await events.tick()
    await events.tick()

    after = delivered(notifier)
    counts = before + after
    assert [channel for channel, times in counts.items() if times > 1] == [], "delivered twice"
    by_id = {row.id: row.status for row in await rows(pg)}
    uncertain = {channel for channel, event_id in channels.items() if by_id[event_id] == "unknown"}
    assert 1 <= len(uncertain) <= 16  # at most the events being sent at once when it died
    assert set(channels) - uncertain <= set(counts), "an event that never started sending was not delivered"
    assert all(by_id[event_id] == "sent" for channel, event_id in channels.items() if channel not in uncertain)
    assert set(after) & set(before) == set()


@contextlib.asynccontextmanager
async def _engine(database: Database) -> AsyncIterator[Database]:
    """Another engine on the same database, as another process would have."""
    other = Database(database.url)
    try:
        yield other
    finally:
        await other.dispose()


async def test_a_send_that_may_have_happened_is_never_retried(db: Database, llm: FakeLLM) -> None:
    user = await ana(db)
    await add(db, user, "reminder", NOW, "call mom")
    await add(db, user, "reminder", NOW, "stretch")
    notifier = RecordingNotifier(failures=[DeliveryFailed("channel 5: TimeoutError", retryable=True, maybe_sent=True)])
    clock = Clock(NOW)
    events = service(db, llm, notifier, clock)
    assert await events.tick() == {"unknown": 1, "sent": 1}
    clock.now += STUCK + timedelta(hours=2)
    assert await events.tick() == {}
    states = sorted((row.status, row.last_error) for row in await rows(db))
    assert states == [("sent", None), ("unknown", "delivery uncertain: channel 5: TimeoutError")]
    assert len(notifier.sent) == 1


async def test_a_claim_taken_back_by_another_process_is_not_sent_by_the_first(db: Database, llm: FakeLLM) -> None:
    """A process that claimed an event and stalled past stuck_after no longer holds it: another process
    claims and sends it, and the first one, waking up, leaves it alone."""
    user = await ana(db)
    await add(db, user, "reminder", NOW, "call mom")
    async with db.session() as session:
        [stale] = await EventRepository(session).claim_due(now=NOW, limit=5)
    notifier, clock = RecordingNotifier(), Clock(NOW + STUCK + timedelta(minutes=1))
    events = service(db, llm, notifier, clock)
    assert await events.tick() == {"sent": 1}
    assert await events.handle(stale, now=clock.now) == "released"
    assert [text for _, _, text in notifier.sent] == ["⏰ Reminder: call mom"]


async def test_a_follow_up_whose_composing_met_a_database_fault_is_sent_at_the_next_tick(
    db: Database, llm: FakeLLM
) -> None:
    """Reading what Hearth knows of the person fails while the follow-up is written: nothing is sent, and the
    next tick (seconds later, not stuck_after) claims it again and sends it, once."""
    user = await ana(db)
    event = await add(db, user, "follow_up", NOW - timedelta(minutes=1), "the exam", context={"question": "How?"})
    llm.default = Reply("How did the exam go, Ana?")
    notifier, clock = RecordingNotifier(), Clock(NOW)
    events = service(db, llm, notifier, clock)
    with failing_statements(db, "SELECT", "user_facts") as failed:
        assert await events.tick() == {}
    assert failed and notifier.sent == []

    clock.now += timedelta(seconds=2)
    assert await events.tick() == {"sent": 1}
    assert await events.tick() == {}
    assert notifier.sent == [(11, None, "How did the exam go, Ana?")]
    assert [(row.id, row.status) for row in await rows(db)] == [(event, "sent")]


async def test_a_greeting_whose_database_went_away_while_the_model_wrote_it_is_sent_once_it_is_back(
    own_server: OwnPostgres, own_db: Database, llm: FakeLLM
) -> None:
    """The database is unreachable from the moment the model writes the greeting until after the tick: the
    event cannot even be put back then; the first tick once the database is back sends it."""
    name = own_db.url.database
    assert name is not None
    user = await ana(own_db)
    await add(own_db, user, "birthday", NOW - timedelta(minutes=1), "birthday")
    outage = own_server.unreachable(name)
    written: list[str] = []

    async def writing_while_the_database_goes(body: dict[str, object]) -> Reply:
        if not written:
            await outage.__aenter__()
        written.append("Happy birthday, Ana!")
        return Reply(written[-1])

    llm.default = writing_while_the_database_goes
    notifier, clock = RecordingNotifier(), Clock(NOW)
    events = service(own_db, llm, notifier, clock, timeout_s=30)
    try:
        assert await events.tick(unsolicited=True) == {}
    finally:
        await outage.__aexit__(None, None, None)
    assert notifier.sent == []

    clock.now += timedelta(seconds=2)
    assert await events.tick(unsolicited=True) == {"sent": 1}
    assert await events.tick(unsolicited=True) == {}
    assert notifier.sent == [(11, None, "Happy birthday, Ana!")] and len(written) == 2


async def test_reminders_claimed_when_reading_their_people_fails_are_sent_at_the_next_tick(
    db: Database, llm: FakeLLM
) -> None:
    """The claim commits, then reading whom the claimed events are for fails: the tick reports the fault, and the
    next one (seconds later, not stuck_after) sends each of them, once."""
    channels = await due_events(db, 3)
    notifier, clock = RecordingNotifier(), Clock(NOW)
    events = service(db, llm, notifier, clock, daily_cap=100)
    with failing_statements(db, "SELECT", "users") as failed, pytest.raises(StorageError):
        await events.tick(unsolicited=False)
    assert failed and notifier.sent == []

    clock.now += timedelta(seconds=2)
    assert await events.tick(unsolicited=False) == {"sent": 2}
    assert await events.tick(unsolicited=True) == {"sent": 1}  # the follow-up, in its own job
    counts = delivered(notifier)
    assert set(counts) == set(channels) and max(counts.values()) == 1
