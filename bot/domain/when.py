"""Understanding when someone wants a reminder: "in 2 hours", "tomorrow at 9", "every Monday at 8".

The grammar is small and predictable rather than clever: a phrase either matches it completely or is refused with
an example, so Hearth never quietly schedules something other than what was meant. The rules worth knowing:

* Times are local to the user's zone. An hour without am/pm is on the 24-hour clock ("at 5" is 05:00), except
  after "afternoon", "evening", "tonight" or "night", where 1–11 mean the afternoon ("tonight at 9" is 21:00);
  at night 1–4 are the small hours, and 12 is midnight after "evening" and "night".
* The small hours (before 06:00) of an evening or a night belong to it: "tonight at 12" and "friday night at 1"
  are after midnight, on the next day.
  A bare number is never a time ("at 9", "9am" and "9:00" are), so "tomorrow 3 eggs" keeps its eggs.
* Weekdays may be shortened to mon, tue, wed, thu and fri; not "sat" and "sun", which are words of their own.
* A day without a time means 09:00. "morning" is 09:00, "noon" 12:00, "afternoon" 15:00, "evening" 19:00,
  "tonight" and "night" 20:00, "midnight" 00:00.
* A time without a day is today if still ahead, else tomorrow. A weekday ("friday") is the coming one, today
  included while the time is still ahead; "next friday" is never today. A date without a year is the next one.
* "in N seconds/minutes/hours" is elapsed time, and so is the span alone ("30m", "1 hour", "2h30m"); "in N
  days/weeks/months/years" (or "2 days" alone) keeps the local clock time, even across a DST change. Local
  times DST skips or repeats resolve as in :func:`local_to_utc`.
* Repeating phrases fire first at the earliest matching moment after now. What they leave out comes from now:
  "every week" is on today's weekday, "every month" on today's day of the month; with neither a day nor a time
  ("every day", "every week") the time is now's (to the minute), so the first firing is one period away.
* "every weekday" ("weekdays", "on weekdays") repeats Monday to Friday, at the time given or now's.
* Other repetitions ("every 2 days", "every other week", "every hour", "fortnightly") are refused, saying which
  are kept.
* Everything must be in the future and at most five years ahead.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.domain.recurrence import (
    Recurrence,
    add_months,
    clamp_day,
    days_in_month,
    local_to_utc,
    require_aware,
    to_local,
)
from bot.errors import HearthError

MAX_AHEAD = timedelta(days=5 * 366)
MAX_REMINDER_LENGTH = 255  # characters of a reminder's words: all of them are kept, and sent
MAX_PENDING_REMINDERS = 100  # reminders one person may have waiting; each is a message in a channel of others
DEFAULT_TIME = time(9, 0)
SMALL_HOURS_END = time(6, 0)  # before this, a time of an evening or a night is after its midnight
DAYPART_TIMES: dict[str, time] = {"morning": time(9), "afternoon": time(15), "evening": time(19), "night": time(20)}
EXAMPLES = "Try 'in 2 hours', 'tomorrow at 9' or 'every Monday at 8'."

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

# "sat" and "sun" are words of their own: "watch the sun" is not a reminder for Sunday.
_WEEKDAY_ABBREVIATIONS = (("mon",), ("tue", "tues"), ("wed",), ("thu", "thur", "thurs"), ("fri",), (), ())
_WEEKDAYS = {
    word: index
    for index, (name, abbreviations) in enumerate(zip(WEEKDAY_NAMES, _WEEKDAY_ABBREVIATIONS, strict=True))
    for word in (name.lower(), *abbreviations)
}
_WEEKDAY_PLURALS = {f"{name.lower()}s": index for index, name in enumerate(WEEKDAY_NAMES)}
_MONTHS = {
    word: index + 1
    for index, name in enumerate(MONTH_NAMES)
    for word in (name.lower(), name[:3].lower(), *(("sept",) if name == "September" else ()))
}
_UNIT_WORDS = {
    "second": ("s", "sec", "secs", "second", "seconds"),
    "minute": ("m", "min", "mins", "minute", "minutes"),
    "hour": ("h", "hr", "hrs", "hour", "hours"),
    "day": ("d", "day", "days"),
    "week": ("w", "wk", "wks", "week", "weeks"),
    "month": ("mo", "month", "months"),
    "year": ("y", "yr", "yrs", "year", "years"),
}
_UNITS = {word: unit for unit, words in _UNIT_WORDS.items() for word in words}
_SECONDS_PER = {"second": 1, "minute": 60, "hour": 3600}
_DAYS_PER = {"day": 1, "week": 7}
_MONTHS_PER = {"month": 1, "year": 12}
_ROUGH_DAYS = {"second": 1 / 86400, "minute": 1 / 1440, "hour": 1 / 24, "day": 1, "week": 7, "month": 31, "year": 366}
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
}  # fmt: skip
_PERIODS: dict[str, Recurrence] = {"day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}
_ADVERBS: dict[str, Recurrence] = {
    "daily": "daily", "everyday": "daily", "weekdays": "weekdays", "weekly": "weekly", "monthly": "monthly",
    "yearly": "yearly", "annually": "yearly",
}  # fmt: skip
# Repetitions people ask for that Hearth does not keep: refused, saying which it does keep (REPEATS_KEPT).
_UNKEPT_ADVERBS = ("hourly", "fortnightly", "biweekly")
_UNKEPT_PERIODS = {"fortnight", *_UNIT_WORDS["second"], *_UNIT_WORDS["minute"], *_UNIT_WORDS["hour"]}
REPEATS_KEPT = "I can only repeat things every day, week, month or year, like 'every Monday at 8'."
_ORDINAL_SUFFIXES = ("st", "nd", "rd", "th")
_TOKEN = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}:\d{2}|-?\d+(?:\.\d+)?|[a-z]+|\S")
_INTEGER = re.compile(r"\d+")
_AMOUNT = re.compile(r"-?\d+(?:\.\d+)?")
_WHAT_EDGES = " \t\n,;:-–—"
_WHAT_CONNECTORS = re.compile(r"^(?:to|that|about|of)(?:\s+|$)", re.IGNORECASE)


class WhenError(HearthError, ValueError):
    """A time phrase that cannot be scheduled; the message says why, with an example, fit to show the user."""


@dataclass(frozen=True, slots=True)
class When:
    """The first firing of a reminder (aware UTC) and how it repeats.

    For repeating reminders ``local_time`` is the wall-clock time asked for and ``anchor_day`` (monthly and yearly
    only) the day of the month: :func:`bot.domain.recurrence.next_occurrence` needs both to stay on the 31st or
    29 February, and on 02:30 across a DST gap.
    """

    at: datetime
    recurrence: Recurrence | None
    description: str
    anchor_day: int | None = None
    local_time: time | None = None
    # Whether the phrase was read on the user's clock (a day, a time of day, a repetition), so their time zone
    # decides the moment: "tomorrow at 9" does, "in 2 hours" does not.
    on_the_clock: bool = True


@dataclass(frozen=True, slots=True)
class _Clock:
    hour: int
    minute: int
    meridiem: str | None = None


@dataclass(frozen=True, slots=True)
class _Duration:
    parts: tuple[tuple[float, str], ...]


@dataclass(frozen=True, slots=True)
class _DaysFromToday:
    days: int


@dataclass(frozen=True, slots=True)
class _Weekday:
    index: int
    not_today: bool = False


@dataclass(frozen=True, slots=True)
class _Date:
    """A calendar date as written; checked only once the whole phrase has parsed."""

    month: int
    day: int
    year: int | None = None


@dataclass(frozen=True, slots=True)
class _DayOfMonth:
    day: int


_DateSpec = _DaysFromToday | _Weekday | _Date | _DayOfMonth


@dataclass(slots=True)
class _Slots:
    """What a phrase said, raw: values are checked after parsing, so a rejected reading raises nothing."""

    recurrence: Recurrence | None = None
    date: _DateSpec | None = None
    daypart: str | None = None
    clock: _Clock | None = None
    duration: _Duration | None = None
    problem: str | None = None


class _Parser:
    """Recursive descent over tokens; every rule either consumes its tokens or leaves the position unchanged."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.tokens[index] if index < len(self.tokens) else ""

    def accept(self, *words: str) -> bool:
        if self.peek() in words:
            self.pos += 1
            return True
        return False

    def done(self) -> bool:
        return self.pos >= len(self.tokens)

    def phrase(self) -> _Slots | None:
        slots = self.relative()
        if slots is None:
            self.pos = 0
            slots = self.absolute()
        return slots if slots is not None and self.done() else None

    def relative(self) -> _Slots | None:
        """ "in 2 hours", "in an hour and a half", "3 days from now", "in 3 days at 9"; a span alone ("30m",
        "2 days", as other reminder bots take them) means "in" it."""
        said_in = self.accept("in")
        duration = self.duration()
        if duration is None:
            return None
        if self.accept("from"):
            if not self.accept("now"):
                return None
        elif not said_in and not self.done():
            return None
        slots = _Slots(duration=duration)
        whole_days = all(unit in ("day", "week", "month", "year") for _, unit in duration.parts)
        while whole_days and not self.done():
            if not (self.daypart_part(slots) or self.clock_part(slots)):
                return None
        return slots

    def duration(self) -> _Duration | None:
        parts: list[tuple[float, str]] = []
        while True:
            mark = self.pos
            if parts and self.accept("and"):
                if self.accept("a") and self.accept("half"):
                    amount, unit = parts[-1]
                    parts[-1] = (amount + 0.5, unit)
                    continue
                self.pos = mark + 1
            part = self.duration_part()
            if part is None:
                self.pos = mark
                return _Duration(tuple(parts)) if parts else None
            parts.append(part)

    def duration_part(self) -> tuple[float, str] | None:
        mark = self.pos
        if self.accept("half") and self.accept("a", "an") and _UNITS.get(self.peek()) == "hour":
            self.pos += 1
            return 0.5, "hour"
        self.pos = mark
        word = self.peek()
        amount = float(word) if _AMOUNT.fullmatch(word) else _NUMBER_WORDS.get(word)
        unit = _UNITS.get(self.peek(1))
        if amount is None or unit is None:
            return None
        self.pos += 2
        return float(amount), unit

    def absolute(self) -> _Slots | None:
        """Everything else: an optional repetition, then a day, a part of the day and a time, in any order."""
        slots = _Slots()
        if not self.recurrence_head(slots):
            return None
        while not self.done():
            if not (self.date_part(slots) or self.daypart_part(slots) or self.clock_part(slots)):
                return None
        if slots.recurrence is None:
            said_something = slots.date or slots.daypart or slots.clock or slots.problem
            return slots if said_something else None
        fits = {
            "daily": slots.date is None,
            "weekdays": slots.date is None,
            "weekly": slots.date is None or (isinstance(slots.date, _Weekday) and not slots.date.not_today),
            "monthly": slots.date is None or isinstance(slots.date, _DayOfMonth),
            "yearly": slots.date is None or (isinstance(slots.date, _Date) and slots.date.year is None),
        }
        return slots if fits[slots.recurrence] else None

    def recurrence_head(self, slots: _Slots) -> bool:
        """ "every day", "daily", "every Monday", "every morning", "every 1 March"; nothing at all is fine too."""
        if self.accept(*_UNKEPT_ADVERBS):  # "hourly"
            slots.problem = REPEATS_KEPT
            return True
        if (adverb := _ADVERBS.get(self.peek())) is not None:
            self.pos += 1
            slots.recurrence = adverb
            return True
        if self.peek() == "on" and self.peek(1) == "weekdays":  # "on weekdays at 8"
            self.pos += 2
            slots.recurrence = "weekdays"
            return True
        if not self.accept("every", "each"):
            return True
        word = self.peek()
        if word in _PERIODS:
            slots.recurrence = _PERIODS[word]
        elif word == "weekday":  # Monday to Friday
            slots.recurrence = "weekdays"
        elif word in _WEEKDAYS or word in _WEEKDAY_PLURALS:
            slots.recurrence = "weekly"
            slots.date = _Weekday(_WEEKDAYS.get(word, _WEEKDAY_PLURALS.get(word, 0)))
        elif word in DAYPART_TIMES:
            slots.recurrence, slots.daypart = "daily", word
        elif word == "other" or word in _UNKEPT_PERIODS or self.duration_part() is not None:
            if word == "other":
                self.pos += 2 if self.peek(1) in _UNITS else 1
            elif word in _UNKEPT_PERIODS:  # "every hour", "every fortnight"
                self.pos += 1
            slots.problem = REPEATS_KEPT
            return True
        else:
            calendar_date = self.calendar_date()
            if calendar_date is None:
                return False
            slots.recurrence, slots.date = "yearly", calendar_date
            return True
        self.pos += 1
        return True

    def date_part(self, slots: _Slots) -> bool:
        if slots.date is not None:
            return False
        mark = self.pos
        said_on = self.accept("on")
        if not said_on:
            self.accept("at")
        spec = self.date_spec(slots, said_on=said_on)
        if spec is None:
            self.pos = mark
            return False
        slots.date = spec
        return True

    def date_spec(self, slots: _Slots, *, said_on: bool) -> _DateSpec | None:
        word = self.peek()
        if word == "today":
            self.pos += 1
            return _DaysFromToday(0)
        if word in ("tomorrow", "tmrw", "tmr"):
            self.pos += 1
            return _DaysFromToday(1)
        mark = self.pos
        self.accept("the")
        if self.accept("day") and self.accept("after") and self.accept("tomorrow"):
            return _DaysFromToday(2)
        self.pos = mark
        if self.accept("next", "this", "coming"):
            if self.peek() in _WEEKDAYS:
                weekday = _Weekday(_WEEKDAYS[self.peek()], not_today=self.tokens[mark] == "next")
                self.pos += 1
                return weekday
            self.pos = mark
            return None
        if word in _WEEKDAYS:
            self.pos += 1
            return _Weekday(_WEEKDAYS[word])
        if word in _WEEKDAY_PLURALS and slots.recurrence in (None, "weekly"):
            self.pos += 1
            slots.recurrence = "weekly"
            return _Weekday(_WEEKDAY_PLURALS[word])
        if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", word):
            self.pos += 1
            year, month, day = (int(piece) for piece in word.split("-"))
            return _Date(month, day, year)
        calendar_date = self.calendar_date()
        if calendar_date is not None:
            return calendar_date
        said_the = self.accept("the")
        day_number = self.day_number()
        if day_number is not None and (said_on or said_the or day_number[1]):
            return _DayOfMonth(day_number[0])
        self.pos = mark
        return None

    def calendar_date(self) -> _Date | None:
        """ "1 March", "the 1st of March", "March 1st", "March 1 2027"."""
        mark = self.pos
        self.accept("the")
        day_number = self.day_number()
        if day_number is not None:
            self.accept("of")
            month = _MONTHS.get(self.peek())
            if month is not None:
                self.pos += 1
                return _Date(month, day_number[0], self.year())
        self.pos = mark
        month = _MONTHS.get(self.peek())
        if month is not None:
            self.pos += 1
            self.accept("the")
            day_number = self.day_number()
            if day_number is not None:
                return _Date(month, day_number[0], self.year())
        self.pos = mark
        return None

    def day_number(self) -> tuple[int, bool] | None:
        """A day of the month and whether it was written as an ordinal ("15th")."""
        if not _INTEGER.fullmatch(self.peek()) or len(self.peek()) > 2:
            return None
        day = int(self.peek())
        self.pos += 1
        return day, self.accept(*_ORDINAL_SUFFIXES)

    def year(self) -> int | None:
        if re.fullmatch(r"\d{4}", self.peek()):
            self.pos += 1
            return int(self.tokens[self.pos - 1])
        return None

    def daypart_part(self, slots: _Slots) -> bool:
        """ "tonight", "this evening", "in the morning", "at night", or "morning" after a day."""
        if slots.daypart is not None:
            return False
        mark = self.pos
        if self.accept("tonight"):
            slots.daypart = "night"
            slots.date = slots.date or _DaysFromToday(0)
            return True
        said_this = self.accept("this")
        if not said_this and self.accept("in"):
            self.accept("the")
        elif not said_this:
            self.accept("at")
        word = self.peek()
        if word not in DAYPART_TIMES:
            self.pos = mark
            return False
        self.pos += 1
        slots.daypart = word
        if said_this and slots.date is None:
            slots.date = _DaysFromToday(0)
        return True

    def clock_part(self, slots: _Slots) -> bool:
        """ "at 9", "9am", "at 17:15", "5:30 pm", "noon", "at midnight"; a bare number is not a time."""
        if slots.clock is not None:
            return False
        mark = self.pos
        said_at = self.accept("at", "@", "around")
        word = self.peek()
        if word in ("noon", "midday", "midnight"):
            self.pos += 1
            slots.clock = _Clock(12 if word != "midnight" else 0, 0)
            return True
        clock = re.fullmatch(r"(\d{1,2}):(\d{2})", word)
        if clock is not None:
            hour, minute = int(clock[1]), int(clock[2])
        elif re.fullmatch(r"\d{1,2}", word):
            hour, minute = int(word), 0
        else:
            self.pos = mark
            return False
        self.pos += 1
        meridiem = self.peek() if self.peek() in ("am", "pm") else None
        if meridiem is None and clock is None and not said_at:
            self.pos = mark
            return False
        if meridiem is not None:
            self.pos += 1
        slots.clock = _Clock(hour, minute, meridiem)
        return True


def _normalize(text: str) -> str:
    phrase = text.lower().replace("’", "'")
    phrase = re.sub(r"\bo'?clock\b", " ", phrase)
    phrase = re.sub(r"\b([ap])\.m\b\.?", r"\1m", phrase)
    phrase = re.sub(r"[,;!?]+|[.:](?!\d)", " ", phrase)
    return " ".join(phrase.split())


def _quote(text: str) -> str:
    shown = " ".join(text.split())
    return f"'{shown[:57]}…'" if len(shown) > 60 else f"'{shown}'"


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _hhmm(moment: time | datetime) -> str:
    return f"{moment.hour:02d}:{moment.minute:02d}"


def _describe_once(at: datetime, now: datetime, tz: ZoneInfo) -> str:
    local, today = to_local(at, tz), to_local(now, tz).date()
    if local.date() == today:
        return f"today at {_hhmm(local)}"
    if local.date() == today + timedelta(days=1):
        return f"tomorrow at {_hhmm(local)}"
    year = f" {local.year}" if local.year != today.year else ""
    return f"on {WEEKDAY_NAMES[local.weekday()]} {local.day} {MONTH_NAMES[local.month - 1]}{year} at {_hhmm(local)}"


def _describe_repeating(recurrence: Recurrence, day: date, anchor: int, wall: time) -> str:
    return {
        "daily": f"every day at {_hhmm(wall)}",
        "weekdays": f"every weekday (Monday to Friday) at {_hhmm(wall)}",
        "weekly": f"every {WEEKDAY_NAMES[day.weekday()]} at {_hhmm(wall)}",
        "monthly": f"every month on the {_ordinal(anchor)} at {_hhmm(wall)}",
        "yearly": f"every year on {anchor} {MONTH_NAMES[day.month - 1]} at {_hhmm(wall)}",
    }[recurrence]


def _check_date(spec: _Date) -> None:
    if not 1 <= spec.month <= 12:
        raise WhenError(f"There is no month {spec.month}. Write dates like 2027-03-01 or '1 March'.")
    month = MONTH_NAMES[spec.month - 1]
    if not 1 <= spec.day <= days_in_month(2000, spec.month):
        raise WhenError(f"There is no {spec.day} {month}.")
    if spec.year is not None and spec.day > days_in_month(spec.year, spec.month):
        raise WhenError(f"There is no {spec.day} {month} in {spec.year}.")


def _wall_time(slots: _Slots) -> time | None:
    """The local time of day the phrase asked for, if it named one."""
    if slots.clock is None:
        return DAYPART_TIMES.get(slots.daypart or "")
    hour, minute, meridiem = slots.clock.hour, slots.clock.minute, slots.clock.meridiem
    valid_hour = 1 <= hour <= 12 if meridiem else 0 <= hour <= 23
    if not valid_hour or minute > 59:
        shown = f"{hour}{meridiem}" if meridiem and not minute else f"{hour}:{minute:02d}{meridiem or ''}"
        raise WhenError(f"There is no {shown} on the clock. Use a time like 9, 9:30, 9pm or 21:30.")
    if meridiem is not None:
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    elif slots.daypart == "night" and hour < 5:
        pass  # "tonight at 1": the small hours ("tonight at 5" is still 17:00)
    elif slots.daypart in ("evening", "night") and hour == 12:
        hour = 0  # "tonight at 12": midnight
    elif slots.daypart in ("afternoon", "evening", "night") and 1 <= hour <= 11:
        hour += 12
    return time(hour, minute)


def _night_shift(slots: _Slots, wall: time) -> timedelta:
    """A day when ``wall`` is in the small hours of the evening or night named: after that day's midnight."""
    late = slots.daypart in ("evening", "night") and wall < SMALL_HOURS_END
    return timedelta(days=1) if late else timedelta(0)


def _check_duration(duration: _Duration, shown: str) -> None:
    if any(amount <= 0 for amount, _ in duration.parts):
        raise WhenError(f"{shown} is not in the future. Use an amount above zero, like 'in 5 minutes'.")
    if any(amount != int(amount) for amount, unit in duration.parts if unit in ("month", "year")):
        raise WhenError("Months and years have to be whole, like 'in 2 months'.")
    rough_days = sum(amount * _ROUGH_DAYS[unit] for amount, unit in duration.parts)
    if rough_days > MAX_AHEAD.days + 31:
        raise WhenError(f"{shown} is more than 5 years away. Pick a time within the next 5 years.")


def _resolve_relative(slots: _Slots, duration: _Duration, now: datetime, tz: ZoneInfo, shown: str) -> datetime:
    """Calendar units move the local date and keep the clock time; smaller units are elapsed time."""
    _check_duration(duration, shown)
    months = sum(int(amount) * _MONTHS_PER.get(unit, 0) for amount, unit in duration.parts)
    days = sum(amount * _DAYS_PER.get(unit, 0) for amount, unit in duration.parts)
    seconds = sum(amount * _SECONDS_PER.get(unit, 0) for amount, unit in duration.parts) + (days - int(days)) * 86400
    local = to_local(now, tz)
    target = clamp_day(*add_months(local.year, local.month, months), local.day) + timedelta(days=int(days))
    wall = _wall_time(slots)
    if wall is not None:
        return local_to_utc(datetime.combine(target + _night_shift(slots, wall), wall), tz)
    if target == local.date():
        return now + timedelta(seconds=seconds)
    return local_to_utc(datetime.combine(target, local.time()), tz) + timedelta(seconds=seconds)


def _first_after(now: datetime, candidates: list[date], wall: time, tz: ZoneInfo) -> datetime:
    """The first of ``candidates`` (in order) whose local ``wall`` time is after ``now``."""
    for day in candidates:
        at = local_to_utc(datetime.combine(day, wall), tz)
        if at > now:
            return at
    return local_to_utc(datetime.combine(candidates[-1], wall), tz)


def _resolve_once(slots: _Slots, now: datetime, tz: ZoneInfo) -> datetime:
    today = to_local(now, tz).date()
    wall = _wall_time(slots) or DEFAULT_TIME
    spec = slots.date
    if spec is None:  # the next time of day it names: no day to be after the midnight of
        return _first_after(now, [today, today + timedelta(days=1)], wall, tz)
    days = _days_named(spec, today)
    shift = _night_shift(slots, wall)  # the days named are the evening's or the night's
    return _first_after(now, [day + shift for day in days], wall, tz)


def _days_named(spec: _DateSpec, today: date) -> list[date]:
    """The days ``spec`` may mean, in order: the first whose time is ahead is the one."""
    if isinstance(spec, _DaysFromToday):
        return [today + timedelta(days=spec.days)]
    if isinstance(spec, _Weekday):
        ahead = (spec.index - today.weekday()) % 7
        first = 7 if spec.not_today and ahead == 0 else ahead
        return [today + timedelta(days=first), today + timedelta(days=first + 7)]
    if isinstance(spec, _DayOfMonth):
        if not 1 <= spec.day <= 31:
            raise WhenError(f"No month has a {_ordinal(spec.day)} day.")
        months = (add_months(today.year, today.month, count) for count in range(13))
        return [date(year, month, spec.day) for year, month in months if spec.day <= days_in_month(year, month)]
    _check_date(spec)
    if spec.year is not None:
        return [date(spec.year, spec.month, spec.day)]
    years = range(today.year, today.year + 9)
    return [date(year, spec.month, spec.day) for year in years if spec.day <= days_in_month(year, spec.month)]


def _resolve_repeating(slots: _Slots, recurrence: Recurrence, now: datetime, tz: ZoneInfo) -> When:
    local = to_local(now, tz)
    today = local.date()
    named_wall = _wall_time(slots)
    wall = named_wall or (DEFAULT_TIME if slots.date is not None else local.time().replace(second=0, microsecond=0))
    spec = slots.date
    if recurrence == "daily":
        anchor = today.day
        candidates = [today, today + timedelta(days=1), today + timedelta(days=2)]
    elif recurrence == "weekdays":  # the next three of Monday to Friday, today's included
        anchor = today.day
        candidates = [day for day in (today + timedelta(days=n) for n in range(5)) if day.weekday() < 5][:3]
    elif recurrence == "weekly":
        weekday = spec.index if isinstance(spec, _Weekday) else today.weekday()
        first = today + timedelta(days=(weekday - today.weekday()) % 7)
        if isinstance(spec, _Weekday):  # "every friday night at 1" is early on Saturdays, maybe this one's
            first += _night_shift(slots, wall)
        anchor = first.day
        candidates = [first - timedelta(days=7), first, first + timedelta(days=7)]
    elif recurrence == "monthly":
        anchor = spec.day if isinstance(spec, _DayOfMonth) else today.day
        if not 1 <= anchor <= 31:
            raise WhenError(f"No month has a {_ordinal(anchor)} day.")
        candidates = [clamp_day(*add_months(today.year, today.month, count), anchor) for count in range(3)]
    else:
        if isinstance(spec, _Date):
            _check_date(spec)
        month, anchor = (spec.month, spec.day) if isinstance(spec, _Date) else (today.month, today.day)
        candidates = [clamp_day(today.year + count, month, anchor) for count in range(3)]
    at = _first_after(now, candidates, wall, tz)
    first_day = to_local(at, tz).date()
    return When(
        at=at,
        recurrence=recurrence,
        description=_describe_repeating(recurrence, first_day, anchor, wall),
        anchor_day=anchor if recurrence in ("monthly", "yearly") else None,
        local_time=wall,
    )


def _parse(phrase: str) -> _Slots | None:
    """The slots of a normalized phrase, or None if it is not a time phrase at all."""
    tokens = _TOKEN.findall(phrase)
    return _Parser(tokens).phrase() if tokens else None


def _resolve(slots: _Slots, text: str, now: datetime, tz: ZoneInfo) -> When:
    """Turn parsed slots into a checked When; all errors about what the phrase asked for are raised here."""
    shown = _quote(text)
    if slots.problem is not None:
        raise WhenError(slots.problem)
    if slots.recurrence is not None:
        return _resolve_repeating(slots, slots.recurrence, now, tz)
    if slots.duration is not None:
        at = _resolve_relative(slots, slots.duration, now, tz, shown)
    else:
        at = _resolve_once(slots, now, tz)
    description = _describe_once(at, now, tz)
    on_the_clock = slots.duration is None or slots.daypart is not None or slots.clock is not None
    if at <= now:
        raise WhenError(f"{shown} is in the past ({description}). Try 'tomorrow at 9' or 'in 2 hours'.")
    if at - now > MAX_AHEAD:
        raise WhenError(f"{shown} is more than 5 years away ({description}). Pick a time within the next 5 years.")
    return When(at=at, recurrence=None, description=description, on_the_clock=on_the_clock)


def parse_when(text: str, *, now: datetime, tz: ZoneInfo) -> When:
    """When ``text`` (a time phrase only, like "tomorrow at 9") asks for, seen at ``now`` (aware) by a user in ``tz``.

    Raises :class:`WhenError` with a message for the user if the phrase is not understood or cannot be scheduled.
    """
    require_aware(now, "now")
    phrase = _normalize(text)
    if not phrase:
        raise WhenError(f"Tell me when. {EXAMPLES}")
    slots = _parse(phrase)
    if slots is None:
        raise WhenError(f"I couldn't understand {_quote(text)}. {EXAMPLES}")
    return _resolve(slots, text, now, tz)


def _clean_what(what: str) -> str:
    what = what.strip(_WHAT_EDGES)
    return _WHAT_CONNECTORS.sub("", what).strip(_WHAT_EDGES)


def read_reminder(when: str, what: str, *, now: datetime, tz: ZoneInfo) -> tuple[When, str]:
    """A reminder given as its time phrase and its words apart (the two fields of ``/remind``).

    The time comes from ``when`` alone: a time in ``what`` ("team meeting on Friday at 3") is part of the words.
    """
    at = parse_when(when, now=now, tz=tz)
    words = _clean_what(what)
    if not words:
        raise WhenError(f"Tell me what to remind you of {_quote(when)}, like 'call mom'.")
    if len(words) > MAX_REMINDER_LENGTH:
        raise WhenError(f"Keep a reminder to {MAX_REMINDER_LENGTH} characters; this one has {len(words)}.")
    return at, words


def check_birthday(month: int, day: int, year: int | None, *, today: date) -> None:
    """Refuse, with WhenError, a birthday no one can have: a day its month lacks (29 February in a year without
    one, when the year is given), or, with its year, a birth date after ``today`` (the person's date, in their
    time zone), most often a year typed wrong."""
    if not 1 <= month <= 12 or not 1 <= day <= days_in_month(2000, month):  # 2000 has 29 February
        raise WhenError(f"There is no day {day} in month {month}.")
    if year is not None and day > days_in_month(year, month):
        raise WhenError(
            f"There was no {day} {MONTH_NAMES[month - 1]} in {year}: check the day and the year, or leave the year out."
        )
    if year is not None and (year, month, day) > (today.year, today.month, today.day):
        raise WhenError(
            f"{day} {MONTH_NAMES[month - 1]} {year} is still to come, so it can't be your date of birth: "
            "give the year you were born, or leave the year out."
        )
