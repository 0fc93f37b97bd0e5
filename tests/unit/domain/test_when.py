from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from bot.domain.recurrence import next_occurrence
from bot.domain.when import MAX_REMINDER_LENGTH, When, WhenError, check_birthday, parse_when, read_reminder
from bot.errors import HearthError

BERLIN = ZoneInfo("Europe/Berlin")  # CET (UTC+1) until Sunday 29 March 2026 02:00, then CEST (UTC+2)
NEW_YORK = ZoneInfo("America/New_York")  # EDT (UTC-4) since 8 March 2026
UTC_ZONE = ZoneInfo("UTC")

# Friday 27 March 2026: 11:00 in Berlin, 06:00 in New York, two days before Berlin moves its clocks.
NOW = datetime(2026, 3, 27, 10, 0, tzinfo=UTC)
EXAMPLES = "Try 'in 2 hours', 'tomorrow at 9' or 'every Monday at 8'."


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("phrase", "at", "recurrence", "description"),
    [
        ("in 2 hours", "2026-03-27 12:00", None, "today at 13:00"),
        ("in 30 minutes", "2026-03-27 10:30", None, "today at 11:30"),
        # Calendar days keep the clock time across the DST change: 71 hours, not 72.
        ("in 3 days", "2026-03-30 09:00", None, "on Monday 30 March at 11:00"),
        ("in 1 week", "2026-04-03 09:00", None, "on Friday 3 April at 11:00"),
        ("in an hour", "2026-03-27 11:00", None, "today at 12:00"),
        ("tomorrow", "2026-03-28 08:00", None, "tomorrow at 09:00"),
        ("tomorrow morning", "2026-03-28 08:00", None, "tomorrow at 09:00"),
        ("tomorrow at 18:30", "2026-03-28 17:30", None, "tomorrow at 18:30"),
        ("tonight", "2026-03-27 19:00", None, "today at 20:00"),
        ("this evening", "2026-03-27 18:00", None, "today at 19:00"),
        # Friday 09:00 has passed in Berlin, so it is next week's Friday, after the change to CEST.
        ("on Friday at 9", "2026-04-03 07:00", None, "on Friday 3 April at 09:00"),
        ("friday 9am", "2026-04-03 07:00", None, "on Friday 3 April at 09:00"),
        ("next monday", "2026-03-30 07:00", None, "on Monday 30 March at 09:00"),
        ("at 5pm", "2026-03-27 16:00", None, "today at 17:00"),
        ("at 17:15", "2026-03-27 16:15", None, "today at 17:15"),
        ("on 2027-03-01", "2027-03-01 08:00", None, "on Monday 1 March 2027 at 09:00"),
        ("on 1 March at 10", "2027-03-01 09:00", None, "on Monday 1 March 2027 at 10:00"),
        ("March 1st", "2027-03-01 08:00", None, "on Monday 1 March 2027 at 09:00"),
        ("every Monday at 8", "2026-03-30 06:00", "weekly", "every Monday at 08:00"),
        ("every day at 7:30", "2026-03-28 06:30", "daily", "every day at 07:30"),
        ("daily at 7", "2026-03-28 06:00", "daily", "every day at 07:00"),
        # Monday to Friday: Friday's 08:00 has passed, so Monday's (after the change to CEST); Friday's 12:00 has not.
        ("every weekday at 8", "2026-03-30 06:00", "weekdays", "every weekday (Monday to Friday) at 08:00"),
        ("weekdays at 12", "2026-03-27 11:00", "weekdays", "every weekday (Monday to Friday) at 12:00"),
        ("on weekdays at 18:30", "2026-03-27 17:30", "weekdays", "every weekday (Monday to Friday) at 18:30"),
        ("each weekday morning", "2026-03-30 07:00", "weekdays", "every weekday (Monday to Friday) at 09:00"),
        ("every week", "2026-04-03 09:00", "weekly", "every Friday at 11:00"),
        ("every month on the 15th", "2026-04-15 07:00", "monthly", "every month on the 15th at 09:00"),
        ("every year on 29 February", "2027-02-28 08:00", "yearly", "every year on 29 February at 09:00"),
    ],
)
def test_phrases_in_berlin_across_the_spring_change(
    phrase: str, at: str, recurrence: str | None, description: str
) -> None:
    when = parse_when(phrase, now=NOW, tz=BERLIN)
    assert (when.at, when.recurrence, when.description) == (utc(at), recurrence, description)


@pytest.mark.parametrize(
    ("phrase", "at", "recurrence", "description"),
    [
        ("in 2 hours", "2026-03-27 12:00", None, "today at 08:00"),
        ("in 30 minutes", "2026-03-27 10:30", None, "today at 06:30"),
        ("in 3 days", "2026-03-30 10:00", None, "on Monday 30 March at 06:00"),
        ("in 1 week", "2026-04-03 10:00", None, "on Friday 3 April at 06:00"),
        ("in an hour", "2026-03-27 11:00", None, "today at 07:00"),
        ("tomorrow", "2026-03-28 13:00", None, "tomorrow at 09:00"),
        ("tomorrow morning", "2026-03-28 13:00", None, "tomorrow at 09:00"),
        ("tomorrow at 18:30", "2026-03-28 22:30", None, "tomorrow at 18:30"),
        ("tonight", "2026-03-28 00:00", None, "today at 20:00"),
        ("this evening", "2026-03-27 23:00", None, "today at 19:00"),
        # It is 06:00 on a Friday in New York: Friday 09:00 is still ahead today.
        ("on Friday at 9", "2026-03-27 13:00", None, "today at 09:00"),
        ("friday 9am", "2026-03-27 13:00", None, "today at 09:00"),
        ("next monday", "2026-03-30 13:00", None, "on Monday 30 March at 09:00"),
        ("at 5pm", "2026-03-27 21:00", None, "today at 17:00"),
        ("at 17:15", "2026-03-27 21:15", None, "today at 17:15"),
        ("on 2027-03-01", "2027-03-01 14:00", None, "on Monday 1 March 2027 at 09:00"),
        ("on 1 March at 10", "2027-03-01 15:00", None, "on Monday 1 March 2027 at 10:00"),
        ("March 1st", "2027-03-01 14:00", None, "on Monday 1 March 2027 at 09:00"),
        ("every Monday at 8", "2026-03-30 12:00", "weekly", "every Monday at 08:00"),
        ("every day at 7:30", "2026-03-27 11:30", "daily", "every day at 07:30"),
        ("daily at 7", "2026-03-27 11:00", "daily", "every day at 07:00"),
        ("every week", "2026-04-03 10:00", "weekly", "every Friday at 06:00"),
        ("every month on the 15th", "2026-04-15 13:00", "monthly", "every month on the 15th at 09:00"),
        ("every year on 29 February", "2027-02-28 14:00", "yearly", "every year on 29 February at 09:00"),
    ],
)
def test_phrases_in_new_york(phrase: str, at: str, recurrence: str | None, description: str) -> None:
    when = parse_when(phrase, now=NOW, tz=NEW_YORK)
    assert (when.at, when.recurrence, when.description) == (utc(at), recurrence, description)


@pytest.mark.parametrize(
    ("phrase", "at", "description"),
    [
        ("in 3 days", "2026-03-30 10:00", "on Monday 30 March at 10:00"),
        ("tomorrow morning", "2026-03-28 09:00", "tomorrow at 09:00"),
        ("tonight", "2026-03-27 20:00", "today at 20:00"),
        ("on Friday at 9", "2026-04-03 09:00", "on Friday 3 April at 09:00"),
        ("at 5pm", "2026-03-27 17:00", "today at 17:00"),
        ("at 17:15", "2026-03-27 17:15", "today at 17:15"),
        ("every day at 7:30", "2026-03-28 07:30", "every day at 07:30"),
        ("every month on the 15th", "2026-04-15 09:00", "every month on the 15th at 09:00"),
        ("every year on 29 February", "2027-02-28 09:00", "every year on 29 February at 09:00"),
    ],
)
def test_phrases_in_utc(phrase: str, at: str, description: str) -> None:
    when = parse_when(phrase, now=NOW, tz=UTC_ZONE)
    assert (when.at, when.description) == (utc(at), description)


@pytest.mark.parametrize(
    ("phrase", "at"),
    [
        ("  TOMORROW   at  9AM ", "2026-03-28 08:00"),
        ("Tomorrow At 9 A.M.", "2026-03-28 08:00"),
        ("in 2h30m", "2026-03-27 12:30"),
        ("in 1 hour and 30 minutes", "2026-03-27 11:30"),
        ("in an hour and a half", "2026-03-27 11:30"),
        ("half an hour from now", "2026-03-27 10:30"),
        ("2 hours from now", "2026-03-27 12:00"),
        ("in 90 secs", "2026-03-27 10:01:30"),
        ("in 1.5 days", "2026-03-28 22:00"),
        ("in 3 days at 9", "2026-03-30 07:00"),
        ("in 2 days in the morning", "2026-03-29 07:00"),
        ("in 1 month", "2026-04-27 09:00"),
        ("in 5 years", "2031-03-27 10:00"),
        ("tonight at 9", "2026-03-27 20:00"),
        ("this evening at 6", "2026-03-27 17:00"),
        ("this afternoon", "2026-03-27 14:00"),
        ("tomorrow night", "2026-03-28 19:00"),
        ("tomorrow at 5 p.m.", "2026-03-28 16:00"),
        ("tomorrow at 12am", "2026-03-27 23:00"),
        ("today at noon", "2026-03-27 11:00"),
        ("at midnight", "2026-03-27 23:00"),
        ("at 9", "2026-03-28 08:00"),
        ("in the morning", "2026-03-28 08:00"),
        ("the day after tomorrow", "2026-03-29 07:00"),
        ("this friday at 9", "2026-04-03 07:00"),
        ("next friday at 5pm", "2026-04-03 15:00"),
        ("mon 8:15am", "2026-03-30 06:15"),
        ("9am on thursday", "2026-04-02 07:00"),
        ("on the 31st", "2026-03-31 07:00"),
        ("on the 1st of April at 10", "2026-04-01 08:00"),
        ("April 1 2027", "2027-04-01 07:00"),
        ("on 29 February", "2028-02-29 08:00"),
        ("at 2026-12-24", "2026-12-24 08:00"),
    ],
)
def test_more_ways_of_saying_it(phrase: str, at: str) -> None:
    assert parse_when(phrase, now=NOW, tz=BERLIN).at == utc(at)


@pytest.mark.parametrize(
    ("phrase", "at", "description"),
    [
        # The small hours belong to the night before: "tonight at 12" is the midnight that ends today.
        ("tonight at 12", "2026-03-27 23:00", "tomorrow at 00:00"),
        ("tonight at midnight", "2026-03-27 23:00", "tomorrow at 00:00"),
        ("tonight at 12:30", "2026-03-27 23:30", "tomorrow at 00:30"),
        ("tonight at 1", "2026-03-28 00:00", "tomorrow at 01:00"),
        ("tonight at 1am", "2026-03-28 00:00", "tomorrow at 01:00"),
        ("this evening at 12", "2026-03-27 23:00", "tomorrow at 00:00"),
        ("friday night at 2", "2026-03-28 01:00", "tomorrow at 02:00"),
        # Saturday night's midnight is Sunday's 00:00 (CET), before Berlin's clocks change at 02:00.
        ("tomorrow night at 12", "2026-03-28 23:00", "on Sunday 29 March at 00:00"),
        # Still the evening: as before.
        ("tonight at 11", "2026-03-27 22:00", "today at 23:00"),
        ("tonight at 5", "2026-03-27 16:00", "today at 17:00"),
        ("tonight at 5am", "2026-03-28 04:00", "tomorrow at 05:00"),
        ("this afternoon at 12", "2026-03-27 11:00", "today at 12:00"),
        ("at night at 1", "2026-03-28 00:00", "tomorrow at 01:00"),
    ],
)
def test_a_time_after_midnight_at_night_is_in_the_night_that_day_ends_with(
    phrase: str, at: str, description: str
) -> None:
    when = parse_when(phrase, now=NOW, tz=BERLIN)
    assert (when.at, when.description) == (utc(at), description)


def test_a_weekly_reminder_at_night_after_midnight_falls_on_the_next_day() -> None:
    when = parse_when("every friday night at 12", now=NOW, tz=BERLIN)
    assert (when.recurrence, when.at, when.description) == (
        "weekly",
        utc("2026-03-27 23:00"),
        "every Saturday at 00:00",
    )
    said_late = parse_when("every friday night at 1", now=utc("2026-03-27 23:30"), tz=BERLIN)  # Saturday 00:30
    assert (said_late.at, said_late.description) == (utc("2026-03-28 00:00"), "every Saturday at 01:00")


@pytest.mark.parametrize(
    ("phrase", "recurrence", "at", "description"),
    [
        ("every monday morning", "weekly", "2026-03-30 07:00", "every Monday at 09:00"),
        ("mondays at 8", "weekly", "2026-03-30 06:00", "every Monday at 08:00"),
        ("weekly on friday at 12", "weekly", "2026-03-27 11:00", "every Friday at 12:00"),
        ("every evening", "daily", "2026-03-27 18:00", "every day at 19:00"),
        ("each day at 11", "daily", "2026-03-28 10:00", "every day at 11:00"),
        ("every day", "daily", "2026-03-28 10:00", "every day at 11:00"),
        ("monthly on the 31st", "monthly", "2026-03-31 07:00", "every month on the 31st at 09:00"),
        ("every month", "monthly", "2026-04-27 09:00", "every month on the 27th at 11:00"),
        ("every March 1st at 8", "yearly", "2027-03-01 07:00", "every year on 1 March at 08:00"),
        ("annually on 30 march", "yearly", "2026-03-30 07:00", "every year on 30 March at 09:00"),
        ("every year", "yearly", "2027-03-27 10:00", "every year on 27 March at 11:00"),
    ],
)
def test_repeating_phrases(phrase: str, recurrence: str, at: str, description: str) -> None:
    when = parse_when(phrase, now=NOW, tz=BERLIN)
    assert (when.recurrence, when.at, when.description) == (recurrence, utc(at), description)


@pytest.mark.parametrize(
    ("now", "phrase", "at", "description"),
    [
        # The time of day has passed: tomorrow.
        ("2026-03-27 18:00", "at 17:15", "2026-03-28 17:15", "tomorrow at 17:15"),
        ("2026-03-27 18:00", "at 5pm", "2026-03-28 17:00", "tomorrow at 17:00"),
        ("2026-03-27 18:00", "every day at 7:30", "2026-03-28 07:30", "every day at 07:30"),
        # Still ahead, to the minute.
        ("2026-03-27 17:14", "at 17:15", "2026-03-27 17:15", "today at 17:15"),
        ("2026-03-27 17:15", "at 17:15", "2026-03-28 17:15", "tomorrow at 17:15"),
        # On the 15th after 09:00 the monthly reminder starts next month; the year rolls over in December.
        ("2026-12-15 10:00", "every month on the 15th", "2027-01-15 09:00", "every month on the 15th at 09:00"),
        ("2026-12-31 10:00", "tomorrow", "2027-01-01 09:00", "tomorrow at 09:00"),
        ("2026-12-31 10:00", "on 2 January", "2027-01-02 09:00", "on Saturday 2 January 2027 at 09:00"),
        # Leap years: 29 February this year if it exists and is ahead.
        ("2028-01-10 10:00", "every year on 29 February", "2028-02-29 09:00", "every year on 29 February at 09:00"),
        ("2028-01-10 10:00", "on 29 February", "2028-02-29 09:00", "on Tuesday 29 February at 09:00"),
        ("2026-01-10 10:00", "every month on the 31st", "2026-01-31 09:00", "every month on the 31st at 09:00"),
        ("2026-02-01 10:00", "every month on the 31st", "2026-02-28 09:00", "every month on the 31st at 09:00"),
    ],
)
def test_what_has_passed_decides_the_day(now: str, phrase: str, at: str, description: str) -> None:
    when = parse_when(phrase, now=utc(now), tz=UTC_ZONE)
    assert (when.at, when.description) == (utc(at), description)


@pytest.mark.parametrize(
    ("phrase", "now", "tz", "at", "description"),
    [
        # 02:30 does not exist in Berlin on 29 March 2026: it moves on by the gap, to 03:30 CEST.
        ("on 29 March at 2:30", NOW, BERLIN, "2026-03-29 01:30", "on Sunday 29 March at 03:30"),
        # 02:30 happens twice on 25 October 2026: the first one (CEST) is meant.
        ("on 25 October at 2:30", NOW, BERLIN, "2026-10-25 00:30", "on Sunday 25 October at 02:30"),
        # Elapsed hours against calendar days over the night the clocks change.
        ("in 48 hours", NOW, BERLIN, "2026-03-29 10:00", "on Sunday 29 March at 12:00"),
        ("in 2 days", NOW, BERLIN, "2026-03-29 09:00", "on Sunday 29 March at 11:00"),
        # New York springs forward on 8 March 2026, seen from Saturday 7 March 10:00 EST.
        ("tomorrow at 10", utc("2026-03-07 15:00"), NEW_YORK, "2026-03-08 14:00", "tomorrow at 10:00"),
        ("in 1 day", utc("2026-03-07 15:00"), NEW_YORK, "2026-03-08 14:00", "tomorrow at 10:00"),
        ("in 24 hours", utc("2026-03-07 15:00"), NEW_YORK, "2026-03-08 15:00", "tomorrow at 11:00"),
        ("every day at 2:30", utc("2026-03-07 15:00"), NEW_YORK, "2026-03-08 07:30", "every day at 02:30"),
        # Months are calendar months, clamped to the end of a shorter month.
        ("in 1 month", utc("2026-01-31 10:00"), UTC_ZONE, "2026-02-28 10:00", "on Saturday 28 February at 10:00"),
    ],
)
def test_daylight_saving_and_calendar_arithmetic(
    phrase: str, now: datetime, tz: ZoneInfo, at: str, description: str
) -> None:
    when = parse_when(phrase, now=now, tz=tz)
    assert (when.at, when.description) == (utc(at), description)


@pytest.mark.parametrize(
    ("phrase", "message"),
    [
        ("blorp", f"I couldn't understand 'blorp'. {EXAMPLES}"),
        ("  ", f"Tell me when. {EXAMPLES}"),
        ("tomorrow at blorp", f"I couldn't understand 'tomorrow at blorp'. {EXAMPLES}"),
        ("9", f"I couldn't understand '9'. {EXAMPLES}"),
        ("every day on friday", f"I couldn't understand 'every day on friday'. {EXAMPLES}"),
        ("next week", f"I couldn't understand 'next week'. {EXAMPLES}"),
        ("sun", f"I couldn't understand 'sun'. {EXAMPLES}"),
        (
            "at 2020-01-01",
            "'at 2020-01-01' is in the past (on Wednesday 1 January 2020 at 09:00). "
            "Try 'tomorrow at 9' or 'in 2 hours'.",
        ),
        ("today at 8", "'today at 8' is in the past (today at 08:00). Try 'tomorrow at 9' or 'in 2 hours'."),
        ("this morning", "'this morning' is in the past (today at 09:00). Try 'tomorrow at 9' or 'in 2 hours'."),
        ("in 0 minutes", "'in 0 minutes' is not in the future. Use an amount above zero, like 'in 5 minutes'."),
        ("in -5 minutes", "'in -5 minutes' is not in the future. Use an amount above zero, like 'in 5 minutes'."),
        ("in 10 years", "'in 10 years' is more than 5 years away. Pick a time within the next 5 years."),
        (
            "in 99999999999999 days",
            "'in 99999999999999 days' is more than 5 years away. Pick a time within the next 5 years.",
        ),
        (
            "on 2033-01-01",
            "'on 2033-01-01' is more than 5 years away (on Saturday 1 January 2033 at 09:00). "
            "Pick a time within the next 5 years.",
        ),
        ("in 1.5 months", "Months and years have to be whole, like 'in 2 months'."),
        ("25:00", "There is no 25:00 on the clock. Use a time like 9, 9:30, 9pm or 21:30."),
        ("tomorrow at 25", "There is no 25:00 on the clock. Use a time like 9, 9:30, 9pm or 21:30."),
        ("at 9:60", "There is no 9:60 on the clock. Use a time like 9, 9:30, 9pm or 21:30."),
        ("at 13pm", "There is no 13pm on the clock. Use a time like 9, 9:30, 9pm or 21:30."),
        ("February 30", "There is no 30 February."),
        ("on 31 april at 9", "There is no 31 April."),
        ("on 2027-02-29", "There is no 29 February in 2027."),
        ("on 2027-13-01", "There is no month 13. Write dates like 2027-03-01 or '1 March'."),
        ("every year on 30 February", "There is no 30 February."),
        ("on the 32nd", "No month has a 32nd day."),
        ("every month on the 32nd", "No month has a 32nd day."),
        ("every 2 days", "I can only repeat things every day, week, month or year, like 'every Monday at 8'."),
        ("every other week", "I can only repeat things every day, week, month or year, like 'every Monday at 8'."),
        ("every hour", "I can only repeat things every day, week, month or year, like 'every Monday at 8'."),
        ("every minute", "I can only repeat things every day, week, month or year, like 'every Monday at 8'."),
        ("every fortnight", "I can only repeat things every day, week, month or year, like 'every Monday at 8'."),
        ("hourly", "I can only repeat things every day, week, month or year, like 'every Monday at 8'."),
        ("fortnightly at 9", "I can only repeat things every day, week, month or year, like 'every Monday at 8'."),
        ("biweekly", "I can only repeat things every day, week, month or year, like 'every Monday at 8'."),
    ],
)
def test_bad_phrases_say_what_went_wrong(phrase: str, message: str) -> None:
    with pytest.raises(WhenError) as caught:
        parse_when(phrase, now=NOW, tz=BERLIN)
    assert str(caught.value) == message


def test_tonight_is_an_error_once_the_evening_has_passed() -> None:
    late = utc("2026-03-27 21:30")
    with pytest.raises(WhenError, match=r"^'tonight' is in the past \(today at 20:00\)"):
        parse_when("tonight", now=late, tz=UTC_ZONE)
    assert parse_when("at 9pm", now=late, tz=UTC_ZONE).at == utc("2026-03-28 21:00")


def test_a_long_phrase_is_shortened_in_the_message() -> None:
    with pytest.raises(WhenError) as caught:
        parse_when("blorp " * 30, now=NOW, tz=BERLIN)
    assert str(caught.value) == f"I couldn't understand '{('blorp ' * 10)[:57]}…'. {EXAMPLES}"


def test_errors_are_value_errors_fit_for_the_user() -> None:
    assert issubclass(WhenError, ValueError)
    assert issubclass(WhenError, HearthError)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_when("in 2 hours", now=datetime(2026, 3, 27, 10, 0), tz=BERLIN)


def test_repeating_reminders_carry_what_the_next_firing_needs() -> None:
    monthly = parse_when("every month on the 31st", now=NOW, tz=BERLIN)
    assert monthly == When(
        at=utc("2026-03-31 07:00"),
        recurrence="monthly",
        description="every month on the 31st at 09:00",
        anchor_day=31,
        local_time=time(9, 0),
    )
    april = next_occurrence(monthly.at, "monthly", BERLIN, anchor_day=monthly.anchor_day, local_time=monthly.local_time)
    may = next_occurrence(april, "monthly", BERLIN, anchor_day=monthly.anchor_day, local_time=monthly.local_time)
    assert (april, may) == (utc("2026-04-30 07:00"), utc("2026-05-31 07:00"))

    leap = parse_when("every year on 29 February", now=NOW, tz=NEW_YORK)
    assert (leap.anchor_day, leap.local_time) == (29, time(9, 0))
    assert next_occurrence(leap.at, "yearly", NEW_YORK, anchor_day=leap.anchor_day) == utc("2028-02-29 14:00")

    # Set for 02:30, fired at 03:30 on the night Berlin skips 02:30; back to 02:30 the week after.
    sunday = parse_when("every Sunday at 2:30", now=NOW, tz=BERLIN)
    assert (sunday.at, sunday.description) == (utc("2026-03-29 01:30"), "every Sunday at 02:30")
    following = next_occurrence(sunday.at, "weekly", BERLIN, local_time=sunday.local_time)
    assert following == utc("2026-04-05 00:30")


def test_one_off_reminders_have_no_anchor() -> None:
    when = parse_when("tomorrow", now=NOW, tz=BERLIN)
    assert (when.recurrence, when.anchor_day, when.local_time) == (None, None, None)


@pytest.mark.parametrize(
    ("when", "what", "at", "recurrence", "words"),
    [
        ("in 2 hours", "call mom", "2026-03-27 12:00", None, "call mom"),
        ("in 2 hours", "team meeting on Friday at 3", "2026-03-27 12:00", None, "team meeting on Friday at 3"),
        ("every Monday at 8", " to water the plants.", "2026-03-30 06:00", "weekly", "water the plants."),
        ("tomorrow at 9", "- that the cake is in the oven", "2026-03-28 08:00", None, "the cake is in the oven"),
    ],
)
def test_a_reminder_takes_its_time_from_when_and_keeps_what_as_written(
    when: str, what: str, at: str, recurrence: str | None, words: str
) -> None:
    schedule, kept = read_reminder(when, what, now=NOW, tz=BERLIN)
    assert (schedule.at, schedule.recurrence, kept) == (utc(at), recurrence, words)


@pytest.mark.parametrize(
    ("when", "what", "message"),
    [
        ("in 2 hours", " to ", "Tell me what to remind you of 'in 2 hours', like 'call mom'."),
        ("soon", "call mom", "I couldn't understand 'soon'. Try 'in 2 hours', 'tomorrow at 9' or 'every Monday at 8'."),
        ("in 2 hours", "x" * (MAX_REMINDER_LENGTH + 1), "Keep a reminder to 255 characters; this one has 256."),
    ],
)
def test_a_reminder_without_words_time_or_room_is_refused(when: str, what: str, message: str) -> None:
    with pytest.raises(WhenError) as caught:
        read_reminder(when, what, now=NOW, tz=BERLIN)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("phrase", "on_the_clock"),
    [
        ("in 2 hours", False),
        ("in 3 days", False),
        ("in 3 days at 9", True),
        ("tomorrow at 9", True),
        ("friday", True),
        ("tonight", True),
        ("every day", True),
        ("every Monday at 8", True),
    ],
)
def test_a_phrase_says_whether_the_time_zone_decides_its_moment(phrase: str, on_the_clock: bool) -> None:
    assert parse_when(phrase, now=NOW, tz=BERLIN).on_the_clock is on_the_clock


@pytest.mark.parametrize(
    ("phrase", "at"),
    [
        ("30m", "2026-03-27 10:30"),
        ("1 hour", "2026-03-27 11:00"),
        ("2h", "2026-03-27 12:00"),
        ("2h30m", "2026-03-27 12:30"),
        ("an hour and a half", "2026-03-27 11:30"),
        ("45 mins", "2026-03-27 10:45"),
        ("2 days", "2026-03-29 09:00"),  # two calendar days on, at the same local time (11:00, now CEST)
        ("1 week", "2026-04-03 09:00"),
    ],
)
def test_a_span_alone_means_in_that_long(phrase: str, at: str) -> None:
    when = parse_when(phrase, now=NOW, tz=BERLIN)
    assert (when.at, when.recurrence, when.on_the_clock) == (utc(at), None, False)


@pytest.mark.parametrize(
    ("phrase", "message"),
    [
        ("2 potatoes", f"I couldn't understand '2 potatoes'. {EXAMPLES}"),
        ("3 eggs tomorrow", f"I couldn't understand '3 eggs tomorrow'. {EXAMPLES}"),
        ("2 days at 9", f"I couldn't understand '2 days at 9'. {EXAMPLES}"),  # "in 2 days at 9" is the way
        ("30m now", f"I couldn't understand '30m now'. {EXAMPLES}"),
        ("0m", "'0m' is not in the future. Use an amount above zero, like 'in 5 minutes'."),
        ("-5m", "'-5m' is not in the future. Use an amount above zero, like 'in 5 minutes'."),
        ("10 years", "'10 years' is more than 5 years away. Pick a time within the next 5 years."),
    ],
)
def test_a_span_alone_that_is_not_one_is_refused(phrase: str, message: str) -> None:
    with pytest.raises(WhenError) as caught:
        parse_when(phrase, now=NOW, tz=BERLIN)
    assert str(caught.value) == message


@pytest.mark.parametrize("phrase", ["weekday", "every weekdays", "every weekday on friday", "every weekday in march"])
def test_a_weekday_phrase_that_is_not_one_is_refused(phrase: str) -> None:
    with pytest.raises(WhenError, match="I couldn't understand"):
        parse_when(phrase, now=NOW, tz=BERLIN)


def test_a_weekday_reminder_comes_monday_to_friday_only() -> None:
    when = parse_when("every weekday at 8", now=NOW, tz=BERLIN)
    at, days = when.at, []
    for _ in range(6):
        days.append(at.astimezone(BERLIN).strftime("%a %H:%M"))
        at = next_occurrence(at, "weekdays", BERLIN, local_time=when.local_time)
    assert days == ["Mon 08:00", "Tue 08:00", "Wed 08:00", "Thu 08:00", "Fri 08:00", "Mon 08:00"]


def test_a_date_of_birth_may_be_today_or_before_but_not_after() -> None:
    today = date(2026, 3, 27)
    for month, day, year in ((3, 27, 2026), (3, 28, 2025), (12, 31, 1900), (4, 1, None), (2, 29, None)):
        check_birthday(month, day, year, today=today)
    for month, day, year in ((3, 28, 2026), (1, 1, 2027), (5, 4, 2099)):
        with pytest.raises(WhenError, match=f"{day} .* {year} is still to come"):
            check_birthday(month, day, year, today=today)


def test_29_february_is_a_birthday_but_not_of_a_year_without_one() -> None:
    today = date(2026, 3, 27)
    check_birthday(2, 29, 2000, today=today)
    check_birthday(2, 29, None, today=today)
    with pytest.raises(WhenError, match="There was no 29 February in 2001"):
        check_birthday(2, 29, 2001, today=today)
