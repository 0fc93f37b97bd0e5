"""Proactive events on a real database (both backends) with a controllable clock: what is sent, postponed,
missed, retried and failed. Discord itself is covered end to end in tests/e2e; here the notifier records."""

import asyncio
import logging
from datetime import UTC, datetime, time, timedelta

import pytest

from bot.db.engine import Database
from bot.db.repositories.events import EventRepository
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.users import UserRepository
from bot.services.events import DeliveryFailed
from bot.services.reminders import ReminderService
from tests.fakes.llm_server import Fail, FakeLLM, Reply, thinking_within
from tests.support.events import NOW, Clock, RecordingNotifier, add, ana, rows, service


async def test_a_due_reminder_is_sent_once_and_a_weekly_one_comes_back_next_week(db: Database, llm: FakeLLM) -> None:
    user = await ana(db, tz="Europe/Lisbon")
    await add(db, user, "reminder", NOW - timedelta(seconds=5), "call mom")
    await add(
        db,
        user,
        "reminder",
        NOW,
        "water the plants",
        recurrence_rule="weekly",
        context={"tz": "Europe/Lisbon", "local_time": "12:00"},
    )
    await add(db, user, "reminder", NOW + timedelta(hours=1), "not yet")
    notifier, clock = RecordingNotifier(), Clock(NOW)
    events = service(db, llm, notifier, clock)

    assert await events.tick() == {"sent": 2}
    assert await events.tick() == {}
    assert sorted(text for _, _, text in notifier.sent) == ["⏰ Reminder: call mom", "⏰ Reminder: water the plants"]
    assert llm.chat_requests == []  # a reminder needs no model
    states = [(r.title, r.status, r.trigger_at) for r in await rows(db)]
    assert ("water the plants", "pending", NOW + timedelta(days=7)) in states
    assert ("not yet", "pending", NOW + timedelta(hours=1)) in states


async def test_an_event_due_while_the_bot_was_down_fires_within_the_grace_period_else_is_missed(
    db: Database, llm: FakeLLM
) -> None:
    user = await ana(db)
    await add(db, user, "reminder", NOW - timedelta(minutes=30), "recent")
    await add(db, user, "reminder", NOW - timedelta(days=4), "stale")
    notifier = RecordingNotifier()
    assert await service(db, llm, notifier, Clock(NOW), grace=timedelta(hours=1)).tick() == {"sent": 1, "missed": 1}
    assert {r.title: r.status for r in await rows(db)} == {"recent": "sent", "stale": "missed"}


async def test_a_late_repeating_reminder_is_sent_once_then_goes_on_and_a_late_greeting_is_missed(
    db: Database, llm: FakeLLM
) -> None:
    """Hearth was stopped for two and a half days: Ana's daily reminder comes once, late, saying so (not once for
    each day), and then at its time tomorrow; her birthday greeting, three hours late, is not sent at all."""
    user = await ana(db, tz="Europe/Lisbon")
    due = NOW - timedelta(days=2, hours=12)
    daily = {"tz": "Europe/Lisbon", "local_time": "00:00"}
    await add(db, user, "reminder", due, "stretch", recurrence_rule="daily", context=daily)
    await add(db, user, "birthday", NOW - timedelta(hours=3), "birthday")
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, Clock(NOW), grace=timedelta(hours=1))

    assert await events.tick() == {"sent": 1, "missed": 1}
    assert await events.tick() == {}
    assert [text for _, _, text in notifier.sent] == [
        f"⏰ Reminder (late — it was due <t:{int(due.timestamp())}:R>): stretch"
    ]
    assert llm.chat_requests == []
    states = [(r.title, r.status, r.trigger_at) for r in await rows(db)]
    assert states == [
        ("stretch", "sent", due),
        ("birthday", "missed", NOW - timedelta(hours=3)),
        ("stretch", "pending", datetime(2026, 11, 24, 0, 0, tzinfo=UTC)),
    ]


async def test_a_failed_delivery_is_retried_with_backoff_then_marked_failed(db: Database, llm: FakeLLM) -> None:
    user = await ana(db)
    await add(db, user, "reminder", NOW, "call mom")
    clock = Clock(NOW)
    notifier = RecordingNotifier(failures=[DeliveryFailed("Discord 503", retryable=True) for _ in range(3)])
    events = service(db, llm, notifier, clock, max_attempts=3)

    assert await events.tick() == {"retrying": 1}
    (row,) = await rows(db)
    assert (row.status, row.attempts, row.trigger_at, row.last_error) == (
        "pending",
        1,
        NOW + timedelta(seconds=60),
        "Discord 503",
    )
    clock.now += timedelta(seconds=61)
    assert await events.tick() == {"retrying": 1}
    clock.now += timedelta(seconds=61)
    assert await events.tick() == {"failed": 1}
    (row,) = await rows(db)
    assert (row.status, row.attempts) == ("failed", 3) and notifier.sent == []


async def test_a_late_reminder_sent_on_a_second_try_still_says_when_it_was_due(db: Database, llm: FakeLLM) -> None:
    """Hearth was stopped when Ana's reminder fell due; back three hours later, its first send meets a Discord
    outage. The try after that still tells her the reminder is late, and since when: not "due 1 minute ago",
    nor as if it were on time."""
    user = await ana(db)
    due = NOW - timedelta(hours=3)
    await add(db, user, "reminder", due, "call the plumber")
    clock = Clock(NOW)
    notifier = RecordingNotifier(failures=[DeliveryFailed("Discord 503", retryable=True)])
    events = service(db, llm, notifier, clock, grace=timedelta(hours=1))

    assert await events.tick() == {"retrying": 1}
    clock.now += timedelta(seconds=61)
    assert await events.tick() == {"sent": 1}
    assert [text for _, _, text in notifier.sent] == [
        f"⏰ Reminder (late — it was due <t:{int(due.timestamp())}:R>): call the plumber"
    ]


async def test_unsolicited_messages_respect_opt_out_quiet_hours_and_the_daily_cap(db: Database, llm: FakeLLM) -> None:
    llm.default = Reply("Happy birthday, Ana! 🎂 Hope the cake is good.")
    user = await ana(db, tz="Asia/Tokyo", quiet=(time(22, 0), time(8, 0)))  # 12:00 UTC is 21:00 in Tokyo
    await add(db, user, "birthday", NOW, "birthday")
    clock = Clock(NOW)
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, clock, daily_cap=1)
    assert await events.tick() == {"sent": 1}  # 21:00 local: not quiet yet
    assert "Ana" in llm.last_prompt_text() and notifier.sent[0][2].startswith("Happy birthday")

    clock.now = NOW + timedelta(hours=2)  # 23:00 in Tokyo: quiet until 08:00 local (23:00 UTC)
    await add(db, user, "follow_up", clock.now, "exam", context={"question": "How did the exam go?"})
    assert await events.tick() == {"postponed": 1}
    follow_up = (await rows(db))[-1]
    assert (follow_up.status, follow_up.trigger_at) == ("pending", datetime(2026, 11, 23, 23, 0, tzinfo=UTC))

    clock.now = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 08:00 the next local day: the cap starts afresh
    llm.default = Fail(503)  # down for longer than the retry budget
    assert await events.tick() == {"sent": 1}
    assert notifier.sent[-1][2] == "How did the exam go?"  # the model was down: the plain wording

    await add(db, user, "follow_up", clock.now, "trip", context={"question": "How was the trip?"})
    assert await events.tick() == {"postponed": 1}  # one unsolicited message a day


@pytest.mark.parametrize("kind", ["birthday", "follow_up"])
async def test_nothing_unsolicited_reaches_someone_who_opted_out(db: Database, llm: FakeLLM, kind: str) -> None:
    user = await ana(db, opt_out=True)
    await add(db, user, kind, NOW, "exam")
    await add(db, user, "reminder", NOW, "call mom")  # asked for: always delivered
    notifier = RecordingNotifier()
    assert await service(db, llm, notifier, Clock(NOW)).tick() == {"cancelled": 1, "sent": 1}
    assert [text for _, _, text in notifier.sent] == ["⏰ Reminder: call mom"]


async def test_a_tick_claims_batch_after_batch_until_nothing_due_is_left(db: Database, llm: FakeLLM) -> None:
    user = await ana(db)
    for i in range(5):
        await add(db, user, "reminder", NOW - timedelta(seconds=i), f"task {i}")
    notifier = RecordingNotifier()
    assert await service(db, llm, notifier, Clock(NOW), claim_batch=2).tick() == {"sent": 5}
    assert sorted(text for _, _, text in notifier.sent) == [f"⏰ Reminder: task {i}" for i in range(5)]


async def test_two_schedulers_on_one_postgresql_fire_each_of_100_events_exactly_once(
    pg: Database, llm: FakeLLM
) -> None:
    user = await ana(pg)
    for i in range(100):
        await add(pg, user, "reminder", NOW - timedelta(seconds=i), f"task {i}")
    first, second = RecordingNotifier(), RecordingNotifier()
    clock = Clock(NOW)
    await asyncio.gather(
        service(pg, llm, first, clock, claim_batch=7).tick(), service(pg, llm, second, clock, claim_batch=7).tick()
    )
    texts = [text for _, _, text in first.sent + second.sent]
    assert sorted(texts) == sorted(f"⏰ Reminder: task {i}" for i in range(100))  # none twice, none left out
    assert first.sent and second.sent
    assert {r.status for r in await rows(pg)} == {"sent"}


async def test_the_daily_cap_holds_when_several_greetings_fall_due_in_one_tick(db: Database, llm: FakeLLM) -> None:
    user = await ana(db)
    for topic in ("exam", "trip", "party"):
        await add(db, user, "follow_up", NOW, topic, context={"question": f"How was the {topic}?"})
    notifier = RecordingNotifier()
    assert await service(db, llm, notifier, Clock(NOW), daily_cap=2).tick() == {"sent": 2, "postponed": 1}


async def test_events_left_claimed_by_a_stopped_process_are_claimed_again(db: Database, llm: FakeLLM) -> None:
    user = await ana(db)
    await add(db, user, "reminder", NOW - timedelta(minutes=15), "call mom")
    await add(db, user, "reminder", NOW - timedelta(minutes=3), "stretch")
    async with db.session() as session:  # a process claims both, then dies before sending
        assert len(await EventRepository(session).claim_due(now=NOW - timedelta(minutes=2), limit=10)) == 2
    notifier = RecordingNotifier()
    assert await service(db, llm, notifier, Clock(NOW), stuck_after=timedelta(minutes=1)).tick() == {"sent": 2}
    assert await service(db, llm, notifier, Clock(NOW), stuck_after=timedelta(minutes=1)).tick() == {}
    assert sorted(text for _, _, text in notifier.sent) == ["⏰ Reminder: call mom", "⏰ Reminder: stretch"]


async def test_a_guild_can_switch_unsolicited_messages_off_or_keep_quiet_hours(db: Database, llm: FakeLLM) -> None:
    user = await ana(db, tz="Europe/Lisbon")  # 12:00 UTC is 12:00 in Lisbon in November
    async with db.session() as session:
        guilds = GuildRepository(session)
        quiet = (await guilds.upsert(discord_id=901, name="Quiet Corner")).id
        off = (await guilds.upsert(discord_id=902, name="No Pings")).id
        await guilds.update_settings(quiet, {"quiet_hours": {"start": "11:00", "end": "13:30"}})
        await guilds.update_settings(off, {"proactive": False})
    await add(db, user, "follow_up", NOW, "exam", guild_id=quiet, context={"question": "How did it go?"})
    await add(db, user, "follow_up", NOW, "trip", guild_id=off, context={"question": "How was it?"})
    await add(db, user, "reminder", NOW, "call mom", guild_id=off)  # asked for: the guild's switch is no matter
    notifier = RecordingNotifier()
    assert await service(db, llm, notifier, Clock(NOW)).tick() == {"postponed": 1, "cancelled": 1, "sent": 1}
    assert {r.title: (r.status, r.trigger_at) for r in await rows(db)} == {
        "exam": ("pending", datetime(2026, 11, 23, 13, 30, tzinfo=UTC)),
        "trip": ("cancelled", NOW),
        "call mom": ("sent", NOW),
    }


async def test_a_birthday_greeting_held_back_to_the_next_day_is_written_as_belated(db: Database, llm: FakeLLM) -> None:
    """Ana's birthday greeting was held back to the next morning by the day's cap: the model is told her birthday
    was yesterday, not that it is today; and if the model is down, the plain wording says belated."""
    user = await ana(db)
    async with db.session() as session:
        preferences = await UserRepository(session).preferences(user)
        preferences.birthday_month, preferences.birthday_day = NOW.month, NOW.day
    await add(db, user, "follow_up", NOW, "exam", context={"question": "How did the exam go?"})
    await add(db, user, "birthday", NOW + timedelta(minutes=1), "birthday")
    await add(db, user, "birthday", NOW + timedelta(minutes=2), "birthday")  # and again, for the plain wording
    llm.default = Reply("How did the exam go?")
    clock = Clock(NOW)
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, clock, daily_cap=1)
    assert await events.tick() == {"sent": 1}
    clock.now = NOW + timedelta(minutes=2)
    assert await events.tick() == {"postponed": 2}

    clock.now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # the next morning, where the cap put them
    llm.script(Reply("Happy belated birthday, Ana!"))
    assert await events.tick() == {"sent": 1, "postponed": 1}
    prompt = llm.chat_requests[1].prompt_text()
    assert "birthday was yesterday" in prompt and "birthday today" not in prompt
    assert notifier.sent[1][2] == "Happy belated birthday, Ana!"
    clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # the other, two days late, with the model down
    llm.default = Fail(503)
    assert await events.tick() == {"sent": 1}
    assert "birthday was 2 days ago" in llm.last_prompt_text()
    assert notifier.sent[2][2] == "Happy belated birthday, Ana! 🎂"


async def test_a_birthday_greeting_held_past_its_day_by_quiet_hours_says_it_is_belated(
    db: Database, llm: FakeLLM
) -> None:
    """Ana's server keeps quiet from 09:00 to half past midnight, so her greeting at 10:00 waits into the next day:
    it still comes, the moment the quiet hours end, and says it is belated rather than wishing her a happy
    birthday on the wrong day."""
    user = await ana(db, tz="Europe/Lisbon")  # Lisbon is on UTC in November
    async with db.session() as session:
        preferences = await UserRepository(session).preferences(user)
        preferences.birthday_month, preferences.birthday_day = NOW.month, NOW.day
        guild = (await GuildRepository(session).upsert(discord_id=901, name="Night Owls")).id
        await GuildRepository(session).update_settings(guild, {"quiet_hours": {"start": "09:00", "end": "00:30"}})
    greeting = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    await add(db, user, "birthday", greeting, "birthday", guild_id=guild)
    llm.default = Fail(503)
    clock = Clock(greeting)
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, clock)
    assert await events.tick() == {"postponed": 1}

    clock.now = datetime(2026, 11, 24, 0, 30, tzinfo=UTC)
    assert await events.tick() == {"sent": 1}
    assert [text for _, _, text in notifier.sent] == ["Happy belated birthday, Ana! 🎂"]


@pytest.mark.parametrize("kind", ["birthday", "follow_up"])
async def test_a_message_the_model_thinks_away_all_its_room_on_is_asked_for_again_with_the_replies_room(
    db: Database, llm: FakeLLM, kind: str
) -> None:
    """A reasoning model thinks through a proactive message's 200 tokens before a word of it: it is asked once more
    with the room a reply gets, and Ana gets the message it then writes, not the plain wording every time."""
    user = await ana(db)
    await add(db, user, kind, NOW, "exam", context={"question": "How did the exam go?"})
    llm.default = thinking_within(400, "Ana! Thinking of you today, I hope it went well.")
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, Clock(NOW), max_tokens_when_no_room=800)

    assert await events.tick() == {"sent": 1}

    assert notifier.sent[0][2] == "Ana! Thinking of you today, I hope it went well."
    assert [request.body["max_tokens"] for request in llm.chat_requests] == [200, 800]


async def test_a_message_the_model_thinks_away_even_with_more_room_goes_out_in_its_plain_wording(
    db: Database, llm: FakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    user = await ana(db)
    await add(db, user, "follow_up", NOW, "exam", context={"question": "How did the exam go?"})
    llm.default = thinking_within(5000, "never written")
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, Clock(NOW), max_tokens_when_no_room=800)

    assert await events.tick() == {"sent": 1}

    assert notifier.sent[0][2] == "How did the exam go?"
    assert [request.body["max_tokens"] for request in llm.chat_requests] == [200, 800]
    assert "unavailable" not in caplog.text and "LLM_MAX_TOKENS" in caplog.text


async def test_a_recurring_greeting_held_back_and_claimed_again_schedules_one_next_occurrence(
    db: Database, llm: FakeLLM
) -> None:
    """A yearly birthday postponed by the daily cap goes back to pending and is claimed again the next day: its
    next year's occurrence is scheduled once, not once per claim (which would greet twice next year)."""
    llm.default = Reply("Happy birthday, Ana!")
    user = await ana(db)
    await add(db, user, "follow_up", NOW, "exam", context={"question": "How did the exam go?"})
    await add(db, user, "birthday", NOW + timedelta(minutes=1), "birthday", recurrence_rule="yearly")
    clock = Clock(NOW)
    events = service(db, llm, RecordingNotifier(), clock, daily_cap=1)
    assert await events.tick() == {"sent": 1}
    clock.now = NOW + timedelta(minutes=1)
    assert await events.tick() == {"postponed": 1}  # the day's one unsolicited message went out
    clock.now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # tomorrow at 10:00, where the cap postponed it
    assert await events.tick() == {"sent": 1}
    birthdays = [(r.status, r.trigger_at.year) for r in await rows(db) if r.event_type == "birthday"]
    assert sorted(birthdays) == [("pending", NOW.year + 1), ("sent", NOW.year)]


async def test_a_greeting_held_back_by_the_cap_goes_before_a_follow_up_held_back_with_it(
    db: Database, llm: FakeLLM
) -> None:
    """Ana has one unsolicited message a day. On her birthday a follow-up noted before she set it takes the
    morning's, and her greeting and that evening's follow-up both wait for 10:00 the next day: there her greeting
    goes first (belated, a day late), and the follow-up waits one more day."""
    user = await ana(db)
    for hour, topic in ((9, "exam"), (18, "trip")):
        at = datetime(2026, 11, 24, hour, 0, tzinfo=UTC)
        await add(db, user, "follow_up", at, topic, context={"question": f"How was the {topic}?"})
    clock = Clock(NOW)
    assert await ReminderService(db, clock=clock).set_birthday(user, 11, 24) == datetime(
        2026, 11, 24, 10, 0, tzinfo=UTC
    )
    llm.default = Fail(503)  # the plain wordings
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, clock, daily_cap=1)
    for hour in (9, 10, 18):
        clock.now = datetime(2026, 11, 24, hour, 0, tzinfo=UTC)
        await events.tick()
    assert [text for _, _, text in notifier.sent] == ["How was the exam?"]

    clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert await events.tick() == {"sent": 1, "postponed": 1}
    assert notifier.sent[-1][2] == "Happy belated birthday, Ana! 🎂"
    clock.now = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert await events.tick() == {"sent": 1}
    assert notifier.sent[-1][2] == "How was the trip?"


async def test_a_follow_up_held_back_from_the_day_before_leaves_the_days_last_place_to_the_greeting(
    db: Database, llm: FakeLLM
) -> None:
    """Ana has one unsolicited message a day, and her server keeps quiet from 17:00 to 09:00. The follow-up asked
    there the evening before her birthday waits for 09:00 on the day; her greeting is due at 10:00. The follow-up,
    a day late already, does not take the day's one place from the greeting due that day (which would come a day
    late, belated): it waits for the next day, and the greeting comes on her birthday."""
    user = await ana(db)
    async with db.session() as session:
        guild = (await GuildRepository(session).upsert(discord_id=901, name="Early Birds")).id
        await GuildRepository(session).update_settings(guild, {"quiet_hours": {"start": "17:00", "end": "09:00"}})
    evening = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    await add(db, user, "follow_up", evening, "exam", guild_id=guild, context={"question": "How was the exam?"})
    clock = Clock(NOW)
    assert await ReminderService(db, clock=clock).set_birthday(user, 11, 24) == datetime(
        2026, 11, 24, 10, 0, tzinfo=UTC
    )
    llm.default = Fail(503)  # the plain wordings
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, clock, daily_cap=1)
    clock.now = evening
    assert await events.tick() == {"postponed": 1}  # quiet hours, to 09:00
    clock.now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert await events.tick() == {"postponed": 1}  # the greeting due at 10:00 takes the day's place
    clock.now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert await events.tick() == {"sent": 1}
    assert [text for _, _, text in notifier.sent] == ["Happy birthday, Ana! 🎂"]
    clock.now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert await events.tick() == {"sent": 1}
    assert notifier.sent[-1][2] == "How was the exam?"


async def test_a_greeting_held_back_day_after_day_is_dropped_once_three_days_late(db: Database, llm: FakeLLM) -> None:
    """Ana has one unsolicited message a day, and each morning at 09:00 a follow-up takes it: her greeting at 10:00
    waits for the next day, and the next. Once it is more than three days late it is dropped, not sent as a
    birthday five days gone."""
    user = await ana(db)
    for day in range(23, 28):
        at = datetime(2026, 11, day, 9, 0, tzinfo=UTC)
        await add(db, user, "follow_up", at, f"plan {day}", context={"question": f"Plan {day}?"})
    clock = Clock(NOW)
    await ReminderService(db, clock=clock).set_birthday(user, 11, 24)
    llm.default = Fail(503)  # the plain wordings
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, clock, daily_cap=1)
    for day in range(23, 30):
        for hour in (9, 10, 18):
            clock.now = datetime(2026, 11, day, hour, 0, tzinfo=UTC)
            await events.tick()

    assert [text for _, _, text in notifier.sent] == [f"Plan {day}?" for day in range(23, 28)]
    birthdays = [(r.status, r.trigger_at.year) for r in await rows(db) if r.event_type == "birthday"]
    assert sorted(birthdays) == [("missed", 2026), ("pending", 2027)]


async def test_a_follow_up_held_back_day_after_day_is_dropped_once_three_days_late(db: Database, llm: FakeLLM) -> None:
    """Ana has one unsolicited message a day, and seven things to be asked about on one evening: one a day goes
    out, the rest wait for the next morning. Once one is more than three days late it is dropped, not asked
    about a week after, nor claimed and put off again every day."""
    user = await ana(db)
    at = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    for n in range(1, 8):
        await add(db, user, "follow_up", at, f"plan {n}", context={"question": f"Plan {n}?"})
    clock = Clock(NOW)
    llm.default = Fail(503)  # the plain wordings
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, clock, daily_cap=1)
    for day in range(23, 31):
        for hour in (10, 18):
            clock.now = datetime(2026, 11, day, hour, 0, tzinfo=UTC)
            await events.tick()

    assert [text for _, _, text in notifier.sent] == [f"Plan {n}?" for n in range(1, 5)]
    assert [(r.title, r.status) for r in await rows(db)] == [
        *((f"plan {n}", "sent") for n in range(1, 5)),
        *((f"plan {n}", "missed") for n in range(5, 8)),
    ]


async def test_a_daily_cap_of_zero_sends_nothing_unsolicited_and_postpones_nothing(db: Database, llm: FakeLLM) -> None:
    """PROACTIVE_DAILY_CAP=0: no greeting nor follow-up is sent, nor put off to the next day and the next: each
    ends cancelled when due. Reminders the user asked for still come."""
    user = await ana(db)
    morning = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    clock = Clock(morning - timedelta(hours=1))
    assert await ReminderService(db, clock=clock).set_birthday(user, 11, 23) == morning
    await add(db, user, "follow_up", morning, "exam", context={"question": "How did the exam go?"})
    await add(db, user, "reminder", morning, "call mom")
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, clock, daily_cap=0)
    clock.now = morning + timedelta(minutes=5)
    assert await events.tick() == {"cancelled": 2, "sent": 1}
    clock.now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # nothing was put off to the next morning
    assert await events.tick() == {}

    assert [text for _, _, text in notifier.sent] == ["⏰ Reminder: call mom"]
    assert sorted((r.event_type, r.status, r.trigger_at.year) for r in await rows(db)) == [
        ("birthday", "cancelled", 2026),
        ("birthday", "pending", 2027),  # the next, ended the same way unless the cap is raised by then
        ("follow_up", "cancelled", 2026),
        ("reminder", "sent", 2026),
    ]
    assert llm.chat_requests == []  # nothing written for a message never to be sent
