from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.domain.recurrence import (
    catch_up,
    days_since_birthday,
    in_quiet_hours,
    local_to_utc,
    next_birthday,
    next_occurrence,
    quiet_hours_end,
    repeating_in,
    same_wall_clock_in,
)

BERLIN = ZoneInfo("Europe/Berlin")  # clocks change on 29 March and 25 October 2026
NEW_YORK = ZoneInfo("America/New_York")  # clocks change on 8 March and 1 November 2026
TOKYO = ZoneInfo("Asia/Tokyo")  # UTC+9, no DST
AUCKLAND = ZoneInfo("Pacific/Auckland")  # UTC+12 in the southern winter
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
UTC_ZONE = ZoneInfo("UTC")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("local", "tz", "expected"),
    [
        ("2026-03-27 11:00", BERLIN, "2026-03-27 10:00"),
        ("2026-03-29 02:30", BERLIN, "2026-03-29 01:30"),  # skipped: moves on to 03:30 CEST
        ("2026-10-25 02:30", BERLIN, "2026-10-25 00:30"),  # repeated: the first, CEST
        ("2026-03-08 02:30", NEW_YORK, "2026-03-08 07:30"),  # skipped: 03:30 EDT
        ("2026-11-01 01:30", NEW_YORK, "2026-11-01 05:30"),  # repeated: the first, EDT
    ],
)
def test_local_times_that_dst_skips_or_repeats(local: str, tz: ZoneInfo, expected: str) -> None:
    assert local_to_utc(datetime.fromisoformat(local), tz) == utc(expected)


@pytest.mark.parametrize(
    ("previous", "recurrence", "tz", "anchor_day", "expected"),
    [
        # Same local time across the spring change: 23 hours in UTC, then across the autumn one: 25 hours.
        ("2026-03-28 07:00", "daily", BERLIN, None, "2026-03-29 06:00"),
        ("2026-10-24 06:00", "daily", BERLIN, None, "2026-10-25 07:00"),
        ("2026-03-02 13:00", "weekly", NEW_YORK, None, "2026-03-09 12:00"),
        ("2026-10-26 12:00", "weekly", NEW_YORK, None, "2026-11-02 13:00"),
        ("2026-03-27 10:00", "daily", UTC_ZONE, None, "2026-03-28 10:00"),
        # Weekdays: Monday to Friday; Friday's next is Monday, at its local time (Berlin moves its clocks between).
        ("2026-03-25 08:00", "weekdays", BERLIN, None, "2026-03-26 08:00"),
        ("2026-03-27 08:00", "weekdays", BERLIN, None, "2026-03-30 07:00"),
        # 08:00 in Tokyo on Monday is 23:00 UTC on Sunday: the local weekday counts.
        ("2026-03-29 23:00", "weekdays", TOKYO, None, "2026-03-30 23:00"),
        ("2026-03-26 23:00", "weekdays", TOKYO, None, "2026-03-29 23:00"),
        # The local date counts, not UTC's: 08:00 in Tokyo is 23:00 UTC the day before.
        ("2026-03-27 23:00", "daily", TOKYO, None, "2026-03-28 23:00"),
        ("2026-01-30 15:00", "monthly", TOKYO, 31, "2026-02-27 15:00"),
        # The 31st: the last day of shorter months, and back to the 31st afterwards.
        ("2026-01-31 09:00", "monthly", UTC_ZONE, 31, "2026-02-28 09:00"),
        ("2026-02-28 09:00", "monthly", UTC_ZONE, 31, "2026-03-31 09:00"),
        ("2026-03-31 09:00", "monthly", UTC_ZONE, 31, "2026-04-30 09:00"),
        ("2026-04-30 09:00", "monthly", UTC_ZONE, 31, "2026-05-31 09:00"),
        ("2026-02-28 09:00", "monthly", UTC_ZONE, None, "2026-03-28 09:00"),  # no anchor: the day it fired
        ("2028-01-30 09:00", "monthly", UTC_ZONE, 30, "2028-02-29 09:00"),
        ("2026-12-15 09:00", "monthly", UTC_ZONE, None, "2027-01-15 09:00"),
        ("2026-03-15 08:00", "monthly", BERLIN, 15, "2026-04-15 07:00"),  # 09:00 CET, then 09:00 CEST
        # 29 February: 28 February in other years, 29 February again in the next leap year.
        ("2028-02-29 09:00", "yearly", UTC_ZONE, 29, "2029-02-28 09:00"),
        ("2029-02-28 09:00", "yearly", UTC_ZONE, 29, "2030-02-28 09:00"),
        ("2031-02-28 09:00", "yearly", UTC_ZONE, 29, "2032-02-29 09:00"),
        ("2031-02-28 09:00", "yearly", UTC_ZONE, None, "2032-02-28 09:00"),
        ("2026-07-01 07:00", "yearly", BERLIN, None, "2027-07-01 07:00"),
        ("2026-12-31 22:00", "yearly", NEW_YORK, None, "2027-12-31 22:00"),
    ],
)
def test_next_occurrence(previous: str, recurrence: str, tz: ZoneInfo, anchor_day: int | None, expected: str) -> None:
    assert next_occurrence(utc(previous), recurrence, tz, anchor_day=anchor_day) == utc(expected)


def test_the_wall_clock_time_survives_a_skipped_hour() -> None:
    # "every day at 02:30" fired at 03:30 CEST on the night Berlin skips 02:30.
    shifted = utc("2026-03-29 01:30")
    assert next_occurrence(shifted, "daily", BERLIN, local_time=time(2, 30)) == utc("2026-03-30 00:30")
    assert next_occurrence(shifted, "daily", BERLIN) == utc("2026-03-30 01:30"), "without it, 03:30 sticks"


def test_a_repeated_hour_fires_once_then_keeps_its_time() -> None:
    first_pass = next_occurrence(utc("2026-10-24 00:30"), "daily", BERLIN)
    assert first_pass == utc("2026-10-25 00:30")
    assert next_occurrence(first_pass, "daily", BERLIN) == utc("2026-10-26 01:30")


def test_a_chain_of_monthly_firings_keeps_its_anchor() -> None:
    firing = utc("2026-01-31 18:00")
    seen = []
    for _ in range(6):
        firing = next_occurrence(firing, "monthly", NEW_YORK, anchor_day=31)
        seen.append(firing.astimezone(NEW_YORK).strftime("%m-%d %H:%M"))
    assert seen == ["02-28 13:00", "03-31 13:00", "04-30 13:00", "05-31 13:00", "06-30 13:00", "07-31 13:00"]


@pytest.mark.parametrize(
    ("previous", "recurrence", "anchor_day"),
    [
        (utc("2026-03-27 10:00"), "hourly", None),
        (utc("2026-03-27 10:00"), "monthly", 0),
        (utc("2026-03-27 10:00"), "monthly", 32),
        (datetime(2026, 3, 27, 10, 0), "daily", None),
    ],
)
def test_next_occurrence_refuses_nonsense(previous: datetime, recurrence: str, anchor_day: int | None) -> None:
    with pytest.raises(ValueError):
        next_occurrence(previous, recurrence, BERLIN, anchor_day=anchor_day)


@pytest.mark.parametrize(
    ("month", "day", "now", "tz", "expected"),
    [
        (5, 10, "2026-03-27 10:00", BERLIN, "2026-05-10 08:00"),  # 10:00 CEST
        (1, 20, "2026-03-27 10:00", BERLIN, "2027-01-20 09:00"),  # passed this year; 10:00 CET
        # The birthday itself: before the hour, today; at or after it, next year.
        (5, 10, "2026-05-10 07:00", BERLIN, "2026-05-10 08:00"),
        (5, 10, "2026-05-10 08:00", BERLIN, "2027-05-10 08:00"),
        (5, 10, "2026-05-10 12:00", BERLIN, "2027-05-10 08:00"),
        # 29 February: itself in leap years, 28 February otherwise.
        (2, 29, "2028-01-10 10:00", UTC_ZONE, "2028-02-29 10:00"),
        (2, 29, "2026-01-10 10:00", UTC_ZONE, "2026-02-28 10:00"),
        (2, 29, "2027-02-28 09:00", UTC_ZONE, "2027-02-28 10:00"),
        (2, 29, "2027-02-28 11:00", UTC_ZONE, "2028-02-29 10:00"),
        (2, 29, "2028-03-01 00:00", UTC_ZONE, "2029-02-28 10:00"),
        (2, 28, "2027-03-01 00:00", UTC_ZONE, "2028-02-28 10:00"),
        # Auckland is already on 10 May at 11:30 while UTC is still on 9 May: this year's greeting has gone.
        (5, 10, "2026-05-09 23:30", AUCKLAND, "2027-05-09 22:00"),
        (5, 10, "2026-05-09 21:30", AUCKLAND, "2026-05-09 22:00"),
        # Los Angeles is still on 9 May at 20:00 while UTC is on 10 May.
        (5, 10, "2026-05-10 03:00", LOS_ANGELES, "2026-05-10 17:00"),
        # New Year happens earlier in Tokyo and later in New York than in UTC.
        (1, 1, "2026-12-31 23:00", TOKYO, "2027-01-01 01:00"),
        (12, 31, "2027-01-01 03:00", NEW_YORK, "2027-12-31 15:00"),
        (1, 1, "2027-01-01 03:00", NEW_YORK, "2027-01-01 15:00"),
    ],
)
def test_next_birthday(month: int, day: int, now: str, tz: ZoneInfo, expected: str) -> None:
    assert next_birthday(month, day, now=utc(now), tz=tz) == utc(expected)


def test_birthday_greeting_hour_is_local() -> None:
    assert next_birthday(6, 1, now=utc("2026-03-27 10:00"), tz=BERLIN, local_hour=8) == utc("2026-06-01 06:00")
    assert next_birthday(6, 1, now=utc("2026-03-27 10:00"), tz=TOKYO, local_hour=0) == utc("2026-05-31 15:00")


def test_a_new_zone_keeps_the_wall_clock_time_unless_it_has_passed_there() -> None:
    greeting = utc("2026-05-04 10:00")  # 10:00 in UTC
    assert same_wall_clock_in(greeting, UTC_ZONE, LOS_ANGELES, now=utc("2026-05-04 09:00")) == utc("2026-05-04 17:00")
    # 10:00 in Tokyo was an hour ago: the greeting keeps its time rather than being skipped or sent twice.
    assert same_wall_clock_in(greeting, UTC_ZONE, TOKYO, now=utc("2026-05-04 02:00")) == greeting
    # 10:00 in Los Angeles is 02:00 the next day in Tokyo, where 10:00 has passed: it comes now, on the day there.
    in_los_angeles = utc("2026-05-04 17:00")
    now = utc("2026-05-04 05:00")  # 14:00 on 4 May in Tokyo
    assert same_wall_clock_in(in_los_angeles, LOS_ANGELES, TOKYO, now=now) == now


def test_a_repeating_event_moves_to_its_time_of_day_in_a_new_zone_or_to_its_next_time_there() -> None:
    daily = utc("2026-05-04 20:00")  # 20:00 in UTC, Monday
    # Still ahead in Los Angeles: 20:00 there that day.
    assert repeating_in(daily, UTC_ZONE, LOS_ANGELES, "daily", now=utc("2026-05-04 12:00")) == utc("2026-05-05 03:00")
    # 20:00 in Tokyo was at 11:00 UTC: tomorrow's, not 05:00 on Tuesday there.
    assert repeating_in(daily, UTC_ZONE, TOKYO, "daily", now=utc("2026-05-04 12:00")) == utc("2026-05-05 11:00")
    assert repeating_in(daily, UTC_ZONE, TOKYO, "weekly", now=utc("2026-05-04 12:00")) == utc("2026-05-11 11:00")
    # A time the clocks skipped kept its own: 02:30 in Berlin, moved to New York, is 02:30 there.
    skipped = utc("2026-03-29 01:30")  # 03:30 CEST, set for 02:30
    assert repeating_in(skipped, BERLIN, NEW_YORK, "daily", now=utc("2026-03-28 12:00"), local_time=time(2, 30)) == utc(
        "2026-03-29 06:30"
    )


@pytest.mark.parametrize(
    ("month", "day", "local_hour", "now"),
    [
        (2, 30, 10, utc("2026-03-27 10:00")),
        (13, 1, 10, utc("2026-03-27 10:00")),
        (4, 31, 10, utc("2026-03-27 10:00")),
        (4, 0, 10, utc("2026-03-27 10:00")),
        (4, 1, 24, utc("2026-03-27 10:00")),
        (4, 1, 10, datetime(2026, 3, 27, 10, 0)),
    ],
)
def test_next_birthday_refuses_nonsense(month: int, day: int, local_hour: int, now: datetime) -> None:
    with pytest.raises(ValueError):
        next_birthday(month, day, now=now, tz=BERLIN, local_hour=local_hour)


NIGHT = (time(22, 0), time(8, 0))
LUNCH = (time(13, 0), time(15, 0))


@pytest.mark.parametrize(
    ("now", "tz", "window", "quiet", "ends"),
    [
        ("2026-03-27 21:30", BERLIN, NIGHT, True, "2026-03-28 07:00"),  # 22:30 → 08:00 the next morning
        ("2026-03-28 05:00", BERLIN, NIGHT, True, "2026-03-28 07:00"),  # 06:00 → 08:00 today
        ("2026-03-27 21:00", BERLIN, NIGHT, True, "2026-03-28 07:00"),  # 22:00: the start belongs to the window
        ("2026-03-27 20:59", BERLIN, NIGHT, False, "2026-03-27 20:59"),
        ("2026-03-28 07:00", BERLIN, NIGHT, False, "2026-03-28 07:00"),  # 08:00: the end does not
        ("2026-03-27 12:00", BERLIN, NIGHT, False, "2026-03-27 12:00"),
        # The night the clocks spring forward is an hour shorter: 08:00 CEST.
        ("2026-03-28 22:00", BERLIN, NIGHT, True, "2026-03-29 06:00"),
        ("2026-03-29 01:30", BERLIN, NIGHT, True, "2026-03-29 06:00"),
        # 23:00 in Tokyo is 14:00 UTC; the quiet ends at 08:00 Tokyo time, still the same UTC day.
        ("2026-03-27 14:00", TOKYO, NIGHT, True, "2026-03-27 23:00"),
        ("2026-03-27 14:00", UTC_ZONE, LUNCH, True, "2026-03-27 15:00"),
        ("2026-03-27 13:00", UTC_ZONE, LUNCH, True, "2026-03-27 15:00"),
        ("2026-03-27 15:00", UTC_ZONE, LUNCH, False, "2026-03-27 15:00"),
        ("2026-03-27 23:00", UTC_ZONE, LUNCH, False, "2026-03-27 23:00"),
        # start == end: no quiet hours at all.
        ("2026-03-27 22:30", UTC_ZONE, (time(22, 0), time(22, 0)), False, "2026-03-27 22:30"),
        # Quiet until 02:30 on the night 02:00-03:00 happens twice: whichever 02:30 is still ahead.
        ("2026-10-25 00:10", BERLIN, (time(1, 0), time(2, 30)), True, "2026-10-25 00:30"),
        ("2026-10-25 01:10", BERLIN, (time(1, 0), time(2, 30)), True, "2026-10-25 01:30"),
    ],
)
def test_quiet_hours(now: str, tz: ZoneInfo, window: tuple[time, time], quiet: bool, ends: str) -> None:
    start, end = window
    assert in_quiet_hours(utc(now), tz, start, end) is quiet
    assert quiet_hours_end(utc(now), tz, start, end) == utc(ends)


@pytest.mark.parametrize(
    ("due", "now", "grace_minutes", "decision"),
    [
        ("2026-03-27 10:00:00", "2026-03-27 09:59:59", 10, "wait"),
        ("2026-03-27 10:00:00", "2026-03-27 10:00:00", 10, "fire"),
        ("2026-03-27 10:00:00", "2026-03-27 10:05:00", 10, "fire"),
        ("2026-03-27 10:00:00", "2026-03-27 10:10:00", 10, "fire"),
        ("2026-03-27 10:00:00", "2026-03-27 10:10:01", 10, "missed"),
        ("2026-03-27 10:00:00", "2026-03-28 10:00:00", 60, "missed"),
        ("2026-03-27 10:00:00", "2026-03-27 10:00:00", 0, "fire"),
        ("2026-03-27 10:00:00", "2026-03-27 10:00:01", 0, "missed"),
    ],
)
def test_catch_up(due: str, now: str, grace_minutes: int, decision: str) -> None:
    assert catch_up(utc(due), utc(now), timedelta(minutes=grace_minutes)) == decision


@pytest.mark.parametrize(
    ("due", "now", "decision"),
    [
        ("2026-03-27 10:00:00", "2026-03-27 10:10:00", "fire"),
        ("2026-03-27 10:00:00", "2026-03-27 10:10:01", "late"),
        ("2026-03-27 10:00:00", "2026-03-30 10:00:00", "late"),
        ("2026-03-27 10:00:00", "2026-03-30 10:00:01", "missed"),
    ],
)
def test_catch_up_sends_late_within_a_bound_when_given_one(due: str, now: str, decision: str) -> None:
    assert catch_up(utc(due), utc(now), timedelta(minutes=10), late_until=timedelta(days=3)) == decision


@pytest.mark.parametrize(
    ("month", "day", "today", "days"),
    [
        (11, 23, date(2026, 11, 23), 0),
        (11, 23, date(2026, 11, 24), 1),
        (12, 31, date(2027, 1, 2), 2),  # last year's
        (2, 29, date(2027, 2, 28), 0),  # greeted on the 28th in other years
        (2, 29, date(2027, 3, 1), 1),
        (2, 29, date(2028, 3, 1), 1),
    ],
)
def test_days_since_birthday(month: int, day: int, today: date, days: int) -> None:
    assert days_since_birthday(month, day, today) == days


def test_days_since_birthday_refuses_a_day_no_month_has() -> None:
    with pytest.raises(ValueError):
        days_since_birthday(2, 30, date(2026, 3, 1))


def test_catch_up_compares_instants_not_wall_clocks() -> None:
    due = utc("2026-03-27 10:00")
    assert catch_up(due, datetime(2026, 3, 27, 11, 5, tzinfo=BERLIN), timedelta(minutes=10)) == "fire"
    assert catch_up(due, datetime(2026, 3, 27, 6, 0, tzinfo=NEW_YORK), timedelta(minutes=10)) == "fire"
    assert catch_up(due, datetime(2026, 3, 27, 5, 59, tzinfo=NEW_YORK), timedelta(minutes=10)) == "wait"


@pytest.mark.parametrize(
    ("due", "now", "grace"),
    [
        (utc("2026-03-27 10:00"), utc("2026-03-27 10:00"), timedelta(minutes=-1)),
        (datetime(2026, 3, 27, 10, 0), utc("2026-03-27 10:00"), timedelta(minutes=1)),
        (utc("2026-03-27 10:00"), datetime(2026, 3, 27, 10, 0), timedelta(minutes=1)),
    ],
)
def test_catch_up_refuses_nonsense(due: datetime, now: datetime, grace: timedelta) -> None:
    with pytest.raises(ValueError):
        catch_up(due, now, grace)


def test_naive_now_is_refused_everywhere() -> None:
    naive = datetime(2026, 3, 27, 10, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        in_quiet_hours(naive, BERLIN, *NIGHT)
    with pytest.raises(ValueError, match="timezone-aware"):
        quiet_hours_end(naive, BERLIN, *NIGHT)
