"""The scheduler's claim on due events and the transitions after it, on SQLite and on PostgreSQL."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import bindparam, select, text
from sqlalchemy.engine import URL

from bot.db import migrations
from bot.db.engine import Database
from bot.db.models import ScheduledEvent
from bot.db.repositories.events import DueEvent, EventRepository
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.users import UserRepository
from bot.db.types import UTCDateTime
from tests.conftest import EMBEDDING_DIMENSION
from tests.support.migrated import database_at

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Discord ids whose shard under two shards is (id >> 22) % 2.
GUILD_ON_SHARD_0 = (1_000_000 << 22) | 4321
GUILD_ON_SHARD_1 = (1_000_001 << 22) | 1234


async def _user(db: Database, discord_id: int = 101) -> int:
    async with db.session() as session:
        user = await UserRepository(session).upsert(
            discord_id=discord_id, username=f"u{discord_id}", display_name=None, seen_at=NOW
        )
    return user.id


async def _add(db: Database, user_id: int, trigger_at: datetime, **fields: Any) -> int:
    values: dict[str, Any] = {"guild_id": None, "channel_id": None, "event_type": "reminder", "title": "t"}
    values.update(fields)
    async with db.session() as session:
        return await EventRepository(session).add(user_id=user_id, trigger_at=trigger_at, **values)


async def _claim(db: Database, *, limit: int = 10, shards: tuple[tuple[int, ...], int] | None = None) -> list[DueEvent]:
    async with db.session() as session:
        return await EventRepository(session).claim_due(now=NOW, limit=limit, shards=shards)


async def _row(db: Database, event_id: int) -> ScheduledEvent:
    async with db.session() as session:
        row = await session.scalar(select(ScheduledEvent).where(ScheduledEvent.id == event_id))
    assert row is not None
    return row


async def test_claim_takes_due_pending_events_oldest_first_up_to_the_limit(db: Database) -> None:
    user_id = await _user(db)
    late = await _add(db, user_id, NOW - timedelta(minutes=1), title="late", context={"k": [1, 2]})
    oldest = await _add(db, user_id, NOW - timedelta(hours=2), title="oldest", channel_id=555)
    exactly_now = await _add(db, user_id, NOW, title="now")
    future = await _add(db, user_id, NOW + timedelta(seconds=1), title="future")
    cancelled = await _add(db, user_id, NOW - timedelta(hours=3), title="cancelled")
    async with db.session() as session:
        assert await EventRepository(session).cancel(cancelled) is True

    first = await _claim(db, limit=2)
    assert [event.id for event in first] == [oldest, late]
    assert first[0] == DueEvent(
        id=oldest,
        user_id=user_id,
        guild_id=None,
        channel_id=555,
        event_type="reminder",
        trigger_at=NOW - timedelta(hours=2),
        title="oldest",
        context={},
        is_recurring=False,
        recurrence_rule=None,
        attempts=0,
        claim_token=first[0].claim_token,
    )
    assert len(first[0].claim_token) == 32 and first[1].claim_token == first[0].claim_token
    assert first[1].context == {"k": [1, 2]}
    assert [event.id for event in await _claim(db, limit=2)] == [exactly_now]
    assert await _claim(db) == []

    for event_id in (oldest, late, exactly_now):
        row = await _row(db, event_id)
        assert (row.status, row.triggered_at) == ("triggered", NOW)
    assert (await _row(db, future)).status == "pending"
    assert (await _row(db, cancelled)).status == "cancelled"


async def test_claim_by_shard_follows_discords_formula_with_dms_on_shard_zero(db: Database) -> None:
    assert (GUILD_ON_SHARD_0 >> 22) % 2 == 0 and (GUILD_ON_SHARD_1 >> 22) % 2 == 1
    user_id = await _user(db)
    async with db.session() as session:
        guilds = GuildRepository(session)
        guild_0 = (await guilds.upsert(discord_id=GUILD_ON_SHARD_0, name="zero")).id
        guild_1 = (await guilds.upsert(discord_id=GUILD_ON_SHARD_1, name="one")).id
    in_guild_0 = await _add(db, user_id, NOW - timedelta(minutes=3), guild_id=guild_0)
    in_guild_1 = await _add(db, user_id, NOW - timedelta(minutes=2), guild_id=guild_1)
    in_dm = await _add(db, user_id, NOW - timedelta(minutes=1))

    assert [event.id for event in await _claim(db, shards=((1,), 2))] == [in_guild_1]
    assert [event.id for event in await _claim(db, shards=((0,), 2))] == [in_guild_0, in_dm]
    again_0 = await _add(db, user_id, NOW - timedelta(minutes=3), guild_id=guild_0)
    again_1 = await _add(db, user_id, NOW - timedelta(minutes=2), guild_id=guild_1)
    assert [event.id for event in await _claim(db, shards=((0, 1), 2))] == [again_0, again_1]  # a process with both
    with pytest.raises(ValueError, match="shard"):
        await _claim(db, shards=((2,), 2))


async def test_transitions_after_a_claim(db: Database) -> None:
    user_id = await _user(db)
    retried, failed, sent, missed, pending = [
        await _add(db, user_id, NOW - timedelta(minutes=5 - offset)) for offset in range(5)
    ]
    claimed = {event.id: event for event in await _claim(db, limit=4)}
    later = NOW + timedelta(minutes=10)
    async with db.session() as session:
        repo = EventRepository(session)
        for event_id in (retried, failed, sent):
            assert await repo.begin_send(claimed[event_id], at=NOW + timedelta(seconds=1))
        assert await repo.retry_later(claimed[retried], at=later, error="discord 503")
        assert await repo.mark_failed(claimed[failed], error="forbidden")
        assert await repo.mark_sent(claimed[sent], at=NOW + timedelta(seconds=3))
        assert await repo.mark_missed(claimed[missed], at=NOW + timedelta(seconds=4))
        assert await repo.cancel(sent) is False  # only pending events can be cancelled
        assert await repo.cancel(pending) is True
        assert await repo.cancel(pending) is False

    row = await _row(db, retried)
    assert (row.status, row.trigger_at, row.attempts, row.last_error) == ("pending", later, 1, "discord 503")
    row = await _row(db, failed)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "forbidden")
    row = await _row(db, sent)
    assert (row.status, row.triggered_at, row.attempts) == ("sent", NOW + timedelta(seconds=3), 0)
    row = await _row(db, missed)
    assert (row.status, row.triggered_at) == ("missed", NOW + timedelta(seconds=4))
    assert (await _row(db, pending)).status == "cancelled"

    # The retried event comes due again, and its attempts carry over into the claim.
    assert await _claim(db) == []
    async with db.session() as session:
        again = await EventRepository(session).claim_due(now=later, limit=5)
    assert [(event.id, event.attempts) for event in again] == [(retried, 1)]

    # Marks only apply to claimed events: a finished one is left as it is.
    async with db.session() as session:
        assert await EventRepository(session).retry_later(claimed[sent], at=later, error="late") is False
    assert (await _row(db, sent)).status == "sent"


async def test_schedule_next_inserts_a_pending_copy_in_the_claims_transaction(db: Database) -> None:
    user_id = await _user(db)
    async with db.session() as session:
        guild_id = (await GuildRepository(session).upsert(discord_id=GUILD_ON_SHARD_1, name="g")).id
    original = await _add(
        db,
        user_id,
        NOW - timedelta(minutes=1),
        guild_id=guild_id,
        channel_id=77,
        event_type="birthday",
        title="Ana's birthday",
        context={"anchor_day": 31},
        recurrence_rule="monthly",
    )
    next_at = NOW + timedelta(days=30)
    async with db.session() as session:
        repo = EventRepository(session)
        [event] = await repo.claim_due(now=NOW, limit=1)
        assert event.is_recurring and event.recurrence_rule == "monthly"
        following = await repo.schedule_next(event, next_at)
        assert await repo.begin_send(event, at=NOW)
        assert await repo.mark_sent(event, at=NOW)

    row = await _row(db, following)
    assert following != original
    assert (row.user_id, row.guild_id, row.channel_id, row.event_type, row.title) == (
        user_id,
        guild_id,
        77,
        "birthday",
        "Ana's birthday",
    )
    assert (row.context, row.is_recurring, row.recurrence_rule) == ({"anchor_day": 31}, True, "monthly")
    assert (row.status, row.trigger_at, row.attempts, row.triggered_at) == ("pending", next_at, 0, None)
    handed_over = await _row(db, original)  # claimed again later, it would not schedule a second next occurrence
    assert (handed_over.is_recurring, handed_over.recurrence_rule) == (False, "monthly")

    one_off = await _add(db, user_id, NOW - timedelta(minutes=1))
    [claimed] = await _claim(db)
    assert claimed.id == one_off
    async with db.session() as session:
        with pytest.raises(ValueError, match="does not recur"):
            await EventRepository(session).schedule_next(claimed, next_at)
        with pytest.raises(ValueError, match="recurrence_rule"):
            await EventRepository(session).add(
                user_id=user_id,
                guild_id=None,
                channel_id=None,
                event_type="reminder",
                trigger_at=NOW,
                title="t",
                recurrence_rule="fortnightly",
            )


async def test_sent_today_counts_sent_events_of_the_given_types_since(db: Database) -> None:
    user_id = await _user(db)
    other_user = await _user(db, discord_id=202)
    since = NOW - timedelta(hours=12)
    plan = [
        (user_id, "check_in", NOW - timedelta(hours=1), "sent"),
        (user_id, "follow_up", NOW - timedelta(hours=2), "sent"),
        (user_id, "check_in", NOW - timedelta(hours=13), "sent"),  # before since
        (user_id, "reminder", NOW - timedelta(hours=1), "sent"),  # solicited
        (user_id, "check_in", NOW - timedelta(hours=1), "missed"),
        (user_id, "check_in", NOW - timedelta(hours=1), "failed"),
        (other_user, "check_in", NOW - timedelta(hours=1), "sent"),
    ]
    for owner, event_type, at, outcome in plan:
        event_id = await _add(db, owner, at - timedelta(minutes=1), event_type=event_type)
        async with db.session() as session:
            repo = EventRepository(session)
            [claimed] = await repo.claim_due(now=at, limit=1)
            assert claimed.id == event_id
            if outcome == "missed":
                await repo.mark_missed(claimed, at=at)
                continue
            await repo.begin_send(claimed, at=at)
            if outcome == "sent":
                await repo.mark_sent(claimed, at=at)
            elif outcome == "failed":
                await repo.mark_failed(claimed, error="x")

    async with db.session() as session:
        repo = EventRepository(session)
        assert await repo.sent_today(user_id, since=since, unsolicited_types=["check_in", "follow_up"]) == 2
        assert await repo.sent_today(user_id, since=since, unsolicited_types=("check_in",)) == 1
        assert await repo.sent_today(user_id, since=since - timedelta(hours=2), unsolicited_types=["check_in"]) == 2
        assert await repo.sent_today(user_id, since=since, unsolicited_types=[]) == 0
        assert await repo.sent_today(other_user, since=since, unsolicited_types=["check_in"]) == 1


async def _race(db: Database, count: int = 100, limit: int = 7) -> tuple[set[int], list[int], list[int]]:
    user_id = await _user(db)
    async with db.session() as session:
        repo = EventRepository(session)
        ids = {
            await repo.add(
                user_id=user_id,
                guild_id=None,
                channel_id=None,
                event_type="reminder",
                trigger_at=NOW - timedelta(seconds=number),
                title=f"event {number}",
            )
            for number in range(count)
        }

    async def claimer() -> list[int]:
        claimed: list[int] = []
        while True:
            async with db.session() as session:
                batch = await EventRepository(session).claim_due(now=NOW, limit=limit)
                await asyncio.sleep(0)  # hold the claim open while the other claimer runs
            if not batch:
                return claimed
            assert len(batch) <= limit
            claimed.extend(event.id for event in batch)

    first, second = await asyncio.gather(claimer(), claimer())
    return ids, first, second


async def test_concurrent_claimers_take_every_event_exactly_once(db: Database) -> None:
    ids, first, second = await _race(db)
    assert len(first) + len(second) == len(ids)
    assert set(first) | set(second) == ids
    assert set(first) & set(second) == set()


async def test_concurrent_claimers_on_postgresql_share_the_work_without_overlap(pg: Database) -> None:
    ids, first, second = await _race(pg)
    assert set(first) | set(second) == ids
    assert set(first) & set(second) == set()
    assert len(first) + len(second) == len(ids)
    assert first and second


async def test_a_stale_claim_is_put_back_only_if_it_never_started_sending(db: Database) -> None:
    """Past ``stuck_after``: a claimed event that never started sending goes back to pending (and the old claim
    can no longer touch it); one left ``sending`` may have been delivered, so it ends ``unknown``, never pending.
    The process that was only slow can still record its send."""
    user_id = await _user(db)
    idle, sending, done = [await _add(db, user_id, NOW - timedelta(minutes=3 - offset)) for offset in range(3)]
    claimed = {event.id: event for event in await _claim(db)}
    async with db.session() as session:
        repo = EventRepository(session)
        assert await repo.begin_send(claimed[sending], at=NOW)
        assert await repo.begin_send(claimed[done], at=NOW)
        assert await repo.mark_sent(claimed[done], at=NOW)
        assert await repo.begin_send(claimed[done], at=NOW) is False  # sent: never sent again
    async with db.session() as session:
        assert await EventRepository(session).requeue_stuck(claimed_before=NOW) == (0, 0)  # not stale yet
    async with db.session() as session:
        assert await EventRepository(session).requeue_stuck(claimed_before=NOW + timedelta(minutes=10)) == (1, 1)

    row = await _row(db, idle)
    assert (row.status, row.claim_token) == ("pending", None)
    row = await _row(db, sending)
    assert row.status == "unknown" and str(row.last_error).startswith("delivery uncertain")
    assert (await _row(db, done)).status == "sent"
    async with db.session() as session:
        repo = EventRepository(session)
        assert await repo.begin_send(claimed[idle], at=NOW) is False  # the old claim no longer holds it
        assert await repo.mark_sent(claimed[sending], at=NOW) is True  # its process was slow, not gone
    [again] = await _claim(db)
    assert again.id == idle and again.claim_token != claimed[idle].claim_token
    async with db.session() as session:
        repo = EventRepository(session)
        assert await repo.mark_missed(claimed[idle], at=NOW) is False
        assert await repo.begin_send(again, at=NOW) is True
        assert await repo.mark_sent(again, at=NOW) is True
    assert [(await _row(db, event_id)).status for event_id in (idle, sending, done)] == ["sent"] * 3


# --- migration 0007 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_upgrading_settles_claims_made_before_claim_tokens(
    backend: str, tmp_path: Path, postgres_server_url: URL
) -> None:
    """An event left ``triggered`` by the older version may have been delivered (it marked a batch sent only
    after all its sends): it becomes ``unknown``, never sent again. On downgrade, ``sending`` and ``unknown``
    become ``failed``, which the older version does not send again either."""
    before = ScriptDirectory.from_config(migrations.alembic_config(embedding_dimension=0)).get_revision("0007")
    assert before is not None and isinstance(before.down_revision, str)
    async with database_at(
        backend, before.down_revision, tmp_path=tmp_path, server_url=postgres_server_url
    ) as database:
        user_id = await _user(database)
        async with database.engine.begin() as connection:
            for event_id, status in ((1, "pending"), (2, "triggered"), (3, "sent")):
                await connection.execute(
                    text(
                        "INSERT INTO scheduled_events (id, user_id, event_type, trigger_at, title, context,"
                        " is_recurring, status, attempts, created_at, updated_at)"
                        " VALUES (:id, :user, 'reminder', :at, 't', '{}', false, :status, 0, :at, :at)"
                    ).bindparams(bindparam("at", type_=UTCDateTime())),
                    {"id": event_id, "user": user_id, "status": status, "at": NOW},
                )
        await migrations.upgrade(database, embedding_dimension=EMBEDDING_DIMENSION)
        states = {event_id: (await _row(database, event_id)) for event_id in (1, 2, 3)}
        assert {event_id: row.status for event_id, row in states.items()} == {1: "pending", 2: "unknown", 3: "sent"}
        assert str(states[2].last_error).startswith("delivery uncertain")

        [claimed] = await _claim(database)
        async with database.session() as session:
            assert await EventRepository(session).begin_send(claimed, at=NOW)  # the new state is allowed
        await migrations.downgrade(database, revision=before.down_revision)
        async with database.engine.connect() as connection:
            result = await connection.execute(text("SELECT id, status FROM scheduled_events"))
            found: dict[int, str] = dict(result.all())
        assert found == {1: "failed", 2: "failed", 3: "sent"}
