"""Reminders, birthdays and time zones as users set them, fired by the event service, on both backends."""

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from bot.db.engine import Database
from bot.db.models import ScheduledEvent
from bot.domain.when import WhenError
from bot.services.events import DeliveryFailed
from bot.services.reminders import ReminderService, UnknownTimezone
from tests.fakes.llm_server import FakeLLM, Reply
from tests.support.events import Clock, RecordingNotifier, add, ana, rows, service

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday; 12:00 in Lisbon, 21:00 in Tokyo


async def test_a_reminder_is_read_in_the_users_time_zone_and_fires_on_time(db: Database, llm: FakeLLM) -> None:
    user = await ana(db, tz="Asia/Tokyo")
    clock = Clock(NOW)
    reminders = ReminderService(db, clock=clock)
    soon = await reminders.remind(user, "in 2 hours", "call mom", guild_id=None, channel_id=None)
    morning = await reminders.remind(user, "tomorrow at 9", "dentist", guild_id=None, channel_id=None)
    assert (soon.what, soon.at) == ("call mom", NOW + timedelta(hours=2))
    assert morning.at == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo
    assert [r.what for r in await reminders.reminders(user)] == ["call mom", "dentist"]

    notifier = RecordingNotifier()
    clock.now = NOW + timedelta(hours=2)
    assert await service(db, llm, notifier, clock).tick() == {"sent": 1}
    assert notifier.sent == [(11, None, "⏰ Reminder: call mom")]


async def test_a_weekly_reminder_keeps_its_local_time_across_the_clock_change(db: Database, llm: FakeLLM) -> None:
    user = await ana(db, tz="Europe/Lisbon")
    clock = Clock(datetime(2027, 3, 20, 12, 0, tzinfo=UTC))  # a Saturday; Lisbon moves to summer time on the 28th
    weekly = await ReminderService(db, clock=clock).remind(
        user, "every Monday at 8", "water the plants", guild_id=None, channel_id=None
    )
    assert (weekly.recurrence, weekly.at) == ("weekly", datetime(2027, 3, 22, 8, 0, tzinfo=UTC))
    clock.now = weekly.at
    assert await service(db, llm, RecordingNotifier(), clock).tick() == {"sent": 1}
    pending = [r for r in await rows(db) if r.status == "pending"]
    assert [r.trigger_at for r in pending] == [datetime(2027, 3, 29, 7, 0, tzinfo=UTC)]  # 08:00 summer time


async def test_a_weekday_reminder_skips_the_weekend(db: Database, llm: FakeLLM) -> None:
    user = await ana(db, tz="Asia/Tokyo")
    clock = Clock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))  # Thursday, 21:00 in Tokyo
    reminder = await ReminderService(db, clock=clock).remind(
        user, "every weekday at 8", "stand-up", guild_id=None, channel_id=None
    )
    assert (reminder.recurrence, reminder.at) == ("weekdays", datetime(2026, 11, 26, 23, 0, tzinfo=UTC))  # Fri 08:00
    clock.now = reminder.at
    notifier = RecordingNotifier()
    assert await service(db, llm, notifier, clock).tick() == {"sent": 1}
    assert notifier.sent == [(11, None, "⏰ Reminder: stand-up")]
    pending = [r.trigger_at for r in await rows(db) if r.status == "pending"]
    assert pending == [datetime(2026, 11, 29, 23, 0, tzinfo=UTC)]  # Monday 08:00 in Tokyo, not Saturday


async def test_a_new_time_zone_moves_repeating_reminders_to_their_time_of_day_there(db: Database, llm: FakeLLM) -> None:
    user = await ana(db)  # on the UTC default
    clock = Clock(NOW)
    reminders = ReminderService(db, clock=clock)
    weekly = await reminders.remind(user, "every Monday at 8", "water the plants", guild_id=None, channel_id=None)
    once = await reminders.remind(user, "in 2 hours", "call mom", guild_id=None, channel_id=None)
    assert weekly.at == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

    await reminders.set_timezone(user, "America/Los_Angeles")  # UTC-8 in November
    assert {r.what: r.at for r in await reminders.reminders(user)} == {
        "call mom": once.at,  # set for a moment, not a time of day
        "water the plants": datetime(2026, 11, 30, 16, 0, tzinfo=UTC),  # 08:00 in Los Angeles
    }
    assert await reminders.cancel(user, once.id)
    clock.now = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert await service(db, llm, RecordingNotifier(), clock).tick() == {"sent": 1}
    pending = [r.trigger_at for r in await rows(db) if r.status == "pending"]
    assert pending == [datetime(2026, 12, 7, 16, 0, tzinfo=UTC)], "and the Mondays after, at 08:00 there too"


async def test_a_new_time_zone_where_this_weeks_time_has_passed_keeps_the_reminder_on_its_weekday(
    db: Database, llm: FakeLLM
) -> None:
    """Ana set "every Monday at 20:00" before telling Hearth her time zone, so it was read in UTC. She sets Tokyo
    on Monday at 21:00 there: this Monday's 20:00 is behind her. The reminder comes next Monday at 20:00 in
    Tokyo, and the Mondays after; not at 05:00 on Tuesday, nor on Tuesdays from then on."""
    user = await ana(db)  # on the UTC default
    clock = Clock(NOW - timedelta(hours=4))  # Monday 08:00 UTC
    reminders = ReminderService(db, clock=clock)
    weekly = await reminders.remind(user, "every Monday at 20:00", "call dad", guild_id=None, channel_id=None)
    assert weekly.at == datetime(2026, 11, 23, 20, 0, tzinfo=UTC)

    clock.now = NOW  # Monday 21:00 in Tokyo
    await reminders.set_timezone(user, "Asia/Tokyo")
    [moved] = await reminders.reminders(user)
    assert moved.at == datetime(2026, 11, 30, 11, 0, tzinfo=UTC)  # Monday 30 November, 20:00 in Tokyo

    clock.now = moved.at
    assert await service(db, llm, RecordingNotifier(), clock).tick() == {"sent": 1}
    pending = [r.trigger_at for r in await rows(db) if r.status == "pending"]
    assert pending == [datetime(2026, 12, 7, 11, 0, tzinfo=UTC)], "and the Mondays after, at 20:00 there"


async def test_a_reminder_that_could_not_be_sent_is_listed_at_the_time_it_was_asked_for(
    db: Database, llm: FakeLLM
) -> None:
    """Discord was down when Ana's reminder fell due, and on each try after: /reminders lists it as not
    delivered at the time she asked for, not at the time of the last try."""
    user = await ana(db)
    clock = Clock(NOW)
    reminders = ReminderService(db, clock=clock)
    asked = await reminders.remind(user, "in 2 hours", "call mom", guild_id=None, channel_id=None)

    outage = [DeliveryFailed("Discord 503", retryable=True) for _ in range(3)]
    events = service(db, llm, RecordingNotifier(failures=outage), clock, max_attempts=3)
    clock.now = asked.at
    outcomes = []
    for _ in range(3):
        outcomes.append(await events.tick())
        clock.now += timedelta(seconds=61)
    assert outcomes == [{"retrying": 1}, {"retrying": 1}, {"failed": 1}]
    [listed] = await reminders.reminders(user)
    assert (listed.what, listed.undelivered, listed.at) == ("call mom", "failed", asked.at)


@pytest.mark.parametrize(
    ("when", "what"),
    [
        ("call mom", "call mom"),
        ("at 25:00", "call mom"),
        ("in 2 hours", " - "),
        ("on the 31st of February", "call"),
        ("in 2 hours", "call mom " * 30),  # longer than a reminder may be: refused, not cut
    ],
)
async def test_a_reminder_that_cannot_be_scheduled_says_why_and_stores_nothing(
    db: Database, when: str, what: str
) -> None:
    user = await ana(db)
    with pytest.raises(WhenError) as error:
        await ReminderService(db, clock=Clock(NOW)).remind(user, when, what, guild_id=None, channel_id=None)
    assert str(error.value)
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(ScheduledEvent)) == 0


async def test_a_29_february_birthday_is_greeted_in_the_users_morning_every_year(db: Database, llm: FakeLLM) -> None:
    llm.default = Reply("Happy birthday, Ana! 🎂")
    user = await ana(db, tz="America/New_York")
    clock = Clock(NOW)
    reminders = ReminderService(db, clock=clock)
    first = await reminders.set_birthday(user, 2, 29)
    assert first == datetime(2027, 2, 28, 15, 0, tzinfo=UTC)  # 10:00 in New York, 28 February in 2027
    assert await reminders.set_birthday(user, 2, 29) == first  # set again: still one greeting scheduled

    clock.now = first
    notifier = RecordingNotifier()
    assert await service(db, llm, notifier, clock).tick() == {"sent": 1}
    assert notifier.sent[0][2] == "Happy birthday, Ana! 🎂"
    pending = [r for r in await rows(db) if r.status == "pending"]
    assert [r.trigger_at for r in pending] == [datetime(2028, 2, 29, 15, 0, tzinfo=UTC)]  # a leap year again

    await reminders.clear_birthday(user)
    assert [r for r in await rows(db) if r.status == "pending"] == []


async def test_a_birthday_greeting_moved_east_past_its_hour_is_sent_on_the_day_there(
    db: Database, llm: FakeLLM
) -> None:
    """Ana's greeting waits for 10:00 on 24 November in Los Angeles. On the evening of the 23rd there she lands in
    Tokyo, where it is already noon on her birthday, and sets her time zone: she is greeted that day, not at 03:00
    on the 25th as a belated birthday, and at 10:00 in Tokyo the years after."""
    llm.default = Reply("Happy birthday, Ana! 🎂")
    user = await ana(db, tz="America/Los_Angeles")
    clock = Clock(NOW)
    reminders = ReminderService(db, clock=clock)
    assert await reminders.set_birthday(user, 11, 24) == datetime(2026, 11, 24, 18, 0, tzinfo=UTC)

    clock.now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 19:00 on the 23rd in Los Angeles, noon in Tokyo
    await reminders.set_timezone(user, "Asia/Tokyo")
    notifier = RecordingNotifier()
    assert await service(db, llm, notifier, clock).tick() == {"sent": 1}
    assert "birthday today" in llm.last_prompt_text()
    assert notifier.sent[0][2] == "Happy birthday, Ana! 🎂"
    pending = [r.trigger_at for r in await rows(db) if r.status == "pending"]
    assert pending == [datetime(2027, 11, 24, 1, 0, tzinfo=UTC)]  # 10:00 in Tokyo


async def test_a_birthday_greeting_held_back_then_moved_west_is_sent_on_the_day_there(
    db: Database, llm: FakeLLM
) -> None:
    """Ana's greeting at 10:00 on her birthday in Tokyo meets the day's cap (a follow-up went out first) and waits
    for the next morning. Before then she flies to Los Angeles, where her birthday is still tomorrow, and sets her
    time zone: she is greeted at 10:00 on her birthday there, on the day, not belatedly the morning after."""
    llm.default = Reply("Happy birthday, Ana! 🎂")
    user = await ana(db, tz="Asia/Tokyo")
    clock = Clock(NOW)
    reminders = ReminderService(db, clock=clock)
    greeting = await reminders.set_birthday(user, 11, 24)
    assert greeting == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
    await add(db, user, "follow_up", greeting - timedelta(minutes=30), "exam", context={"question": "How was it?"})
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, clock, daily_cap=1)
    clock.now = greeting
    assert await events.tick() == {"sent": 1, "postponed": 1}  # the follow-up, due first, took the day's one

    clock.now = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # 18:00 on the 23rd in Los Angeles
    await reminders.set_timezone(user, "America/Los_Angeles")
    clock.now = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # 10:00 on the 24th in Los Angeles
    assert await events.tick() == {"sent": 1}
    assert "birthday today" in llm.last_prompt_text()
    assert notifier.sent[-1][2] == "Happy birthday, Ana! 🎂"


async def test_a_birthday_set_again_after_a_move_west_is_not_greeted_twice_that_year(
    db: Database, llm: FakeLLM
) -> None:
    """Ana is greeted at 10:00 on her birthday in Tokyo, flies to Los Angeles, where it is still the day before,
    sets her time zone there and then her birthday again, with her year of birth: 10:00 on her birthday is still
    ahead in Los Angeles, but she has had this year's greeting. The next one is next year's."""
    llm.default = Reply("Happy birthday, Ana! 🎂")
    user = await ana(db, tz="Asia/Tokyo")
    clock = Clock(NOW)
    reminders = ReminderService(db, clock=clock)
    greeting = await reminders.set_birthday(user, 11, 24)
    assert greeting == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
    clock.now = greeting
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, clock)
    assert await events.tick() == {"sent": 1}

    clock.now = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)  # 20:00 on the 23rd in Los Angeles
    await reminders.set_timezone(user, "America/Los_Angeles")
    assert await reminders.set_birthday(user, 11, 24, 1990) == datetime(2027, 11, 24, 18, 0, tzinfo=UTC)
    clock.now = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # 10:00 on the 24th in Los Angeles
    assert await events.tick() == {}
    assert len(notifier.sent) == 1


async def test_a_birthday_set_again_on_the_day_keeps_the_greeting_held_back_for_it(db: Database, llm: FakeLLM) -> None:
    """Ana's greeting at 10:00 on her birthday waits for her quiet hours to end at noon. At 11:00 she sets her
    birthday again, with her year of birth this time: the greeting still comes at noon, on her birthday, and
    next year's after it."""
    llm.default = Reply("Happy birthday, Ana! 🎂")
    user = await ana(db, quiet=(time(8, 0), time(12, 0)))
    clock = Clock(NOW)
    reminders = ReminderService(db, clock=clock)
    greeting = await reminders.set_birthday(user, 11, 24)
    assert greeting == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    notifier = RecordingNotifier()
    events = service(db, llm, notifier, clock)
    clock.now = greeting
    assert await events.tick() == {"postponed": 1}

    clock.now = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
    assert await reminders.set_birthday(user, 11, 24, 1990) == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    clock.now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert await events.tick() == {"sent": 1}
    assert "birthday today" in llm.last_prompt_text()
    assert notifier.sent[0][2] == "Happy birthday, Ana! 🎂"
    pending = [r.trigger_at for r in await rows(db) if r.status == "pending"]
    assert pending == [datetime(2027, 11, 24, 10, 0, tzinfo=UTC)]


async def test_a_birthday_set_again_before_its_greeting_went_keeps_it_and_another_date_replaces_it(
    db: Database, llm: FakeLLM
) -> None:
    """At 10:00:30 on her birthday, before the next poll has sent her greeting, Ana sets the same birthday again:
    the greeting still goes out. Had she set another date, it would have been replaced by that date's."""
    llm.default = Reply("Happy birthday, Ana! 🎂")
    user = await ana(db)
    clock = Clock(NOW)
    reminders = ReminderService(db, clock=clock)
    greeting = await reminders.set_birthday(user, 11, 24)
    clock.now = greeting + timedelta(seconds=30)
    assert await reminders.set_birthday(user, 11, 24) == greeting
    notifier = RecordingNotifier()
    assert await service(db, llm, notifier, clock).tick() == {"sent": 1}
    assert notifier.sent[0][2] == "Happy birthday, Ana! 🎂"

    clock.now = datetime(2027, 11, 24, 10, 0, 30, tzinfo=UTC)  # a year on, that greeting again not yet sent
    assert await reminders.set_birthday(user, 12, 5) == datetime(2027, 12, 5, 10, 0, tzinfo=UTC)
    assert await service(db, llm, notifier, clock).tick() == {}
    pending = [r.trigger_at for r in await rows(db) if r.status == "pending"]
    assert pending == [datetime(2027, 12, 5, 10, 0, tzinfo=UTC)]


async def test_a_stored_zone_this_system_does_not_know_reads_times_in_utc(db: Database) -> None:
    # Set on a machine whose zone data is newer than this one's (processes sharing one database).
    user = await ana(db, tz="America/Nowhere_New")
    reminders = ReminderService(db, clock=Clock(NOW))
    morning = await reminders.remind(user, "tomorrow at 9", "dentist", guild_id=None, channel_id=None)
    assert morning.at == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert await reminders.set_birthday(user, 12, 1) == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


async def test_time_zones_and_reminders_are_the_users_own(db: Database) -> None:
    user = await ana(db)
    reminders = ReminderService(db, clock=Clock(NOW))
    with pytest.raises(UnknownTimezone):
        await reminders.set_timezone(user, "Mars/Olympus_Mons")
    assert (await reminders.set_timezone(user, "Europe/Lisbon")).key == "Europe/Lisbon"
    reminder = await reminders.remind(user, "in 1 hour", "stretch", guild_id=None, channel_id=None)
    assert not await reminders.cancel(user + 1, reminder.id)  # someone else's: untouched
    assert await reminders.cancel(user, reminder.id)
    assert await reminders.reminders(user) == []
