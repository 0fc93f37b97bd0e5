"""What a user asks Hearth to do later: reminders, their birthday and their time zone.

The slash commands call these methods; the scheduler (``bot/services/events.py``) fires what they store. A
phrase that cannot be scheduled raises :class:`~bot.domain.when.WhenError` with a message fit to show the
user, and nothing is stored.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.db.engine import Database
from bot.db.repositories.events import DUE_AT, EventRepository, first_due
from bot.db.repositories.users import UserRepository
from bot.db.session import AsyncSession
from bot.db.types import utcnow
from bot.domain.recurrence import (
    local_to_utc,
    next_birthday,
    repeating_in,
    same_wall_clock_in,
    to_local,
    zone_or_utc,
)
from bot.domain.unsolicited import Withheld, withheld
from bot.domain.when import MAX_PENDING_REMINDERS, When, check_birthday, read_reminder
from bot.errors import HearthError

# A birthday greeting goes out at this local hour (in the user's time zone).
BIRTHDAY_HOUR = 10
# A birthday greeting this soon after the last one sent would be that birthday's again: 10:00 on one date falls
# up to 26 hours apart across the world's time zones, so a move west can put it still ahead after the greeting.
GREETINGS_APART = timedelta(days=2)
# The context key of a one-off reminder asked for on the user's clock ("tomorrow at 9", not "in 2 hours").
ON_THE_CLOCK = "on_the_clock"
# How long the list of reminders keeps showing one that never reached its user.
UNDELIVERED_SHOWN_FOR = timedelta(days=7)
# The stored time zone of someone who has set none ("UTC", the column's default); UTC chosen with /timezone set is
# kept by its other name, so that it is theirs from then on and no answer asks whether it is.
NO_TIME_ZONE, UTC_CHOSEN = "UTC", "Etc/UTC"


class UnknownTimezone(HearthError, ValueError):
    """Not an IANA time zone name."""


class TooManyReminders(HearthError):
    """The user has MAX_PENDING_REMINDERS reminders waiting already."""


@dataclass(frozen=True, slots=True)
class Reminder:
    id: int
    what: str
    at: datetime  # UTC; for one that never reached its user, the time it was due
    recurrence: str | None  # daily, weekdays, weekly, monthly or yearly: repeats
    # Why it never reached its user: "missed" (due while Hearth was stopped) or "failed" (Discord refused it, or
    # could not be reached); None for one still to come.
    undelivered: str | None = None
    # Its time was read on a clock in UTC, the time zone of someone who has not set theirs (see /timezone set).
    read_in_utc: bool = False


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` ("Europe/Lisbon"), or :class:`UnknownTimezone` with a hint."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownTimezone(
            f"I don't know the time zone {name!r}: use a name like Europe/Lisbon or America/New_York"
        ) from None


@dataclass(frozen=True, slots=True)
class Greeting:
    """What becomes of someone's birthday greeting: ``withheld``, why none reaches them (the scheduler cancels it
    when due; a greeting goes by DM, so no server's setting stands in its way), None when it comes; ``in_utc``,
    whether it is reckoned at BIRTHDAY_HOUR UTC, as they set no time zone (an answer saying when then says so, as
    one for a reminder read in UTC does)."""

    withheld: Withheld | None
    in_utc: bool


class ReminderService:
    def __init__(self, database: Database, *, daily_cap: int = 3, clock: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        self.daily_cap = daily_cap  # PROACTIVE_DAILY_CAP: 0 sends no birthday greetings at all
        self.clock = clock

    async def remind(
        self, user_id: int, when: str, what: str, *, guild_id: int | None, channel_id: int | None
    ) -> Reminder:
        """Store a reminder of ``what`` at ``when`` ("in 2 hours", "every Monday at 8"), read in the user's time
        zone; raises WhenError (nothing stored) when it cannot be scheduled, TooManyReminders when the user has
        MAX_PENDING_REMINDERS waiting."""
        now = self.clock()
        async with self.database.session() as session:
            preferences = await UserRepository(session).preferences(user_id)
            schedule, words = read_reminder(when, what, now=now, tz=zone_or_utc(preferences.timezone))
            events = EventRepository(session)
            if await events.count_pending(user_id, event_type="reminder") >= MAX_PENDING_REMINDERS:
                raise TooManyReminders(
                    f"You have {MAX_PENDING_REMINDERS} reminders waiting, the most I keep for one person: "
                    "cancel one with /reminders first."
                )
            event_id = await events.add(
                user_id=user_id,
                guild_id=guild_id,
                channel_id=channel_id,
                event_type="reminder",
                trigger_at=schedule.at,
                title=words,
                context=_reminder_context(schedule, preferences.timezone),
                recurrence_rule=schedule.recurrence,
            )
        read_in_utc = schedule.on_the_clock and _reads_in_utc(preferences.timezone)
        return Reminder(event_id, words, schedule.at, schedule.recurrence, read_in_utc=read_in_utc)

    async def reminders(self, user_id: int) -> list[Reminder]:
        """The user's pending reminders, soonest first; then those of the last UNDELIVERED_SHOWN_FOR that never
        reached them, the latest first, so that none is lost without a word."""
        since = self.clock() - UNDELIVERED_SHOWN_FOR
        async with self.database.session() as session:
            events = EventRepository(session)
            pending = await events.pending(user_id, event_type="reminder")
            undelivered = await events.undelivered(user_id, event_type="reminder", since=since)
        return [Reminder(e.id, e.title, e.trigger_at, e.recurrence_rule) for e in pending] + [
            Reminder(e.id, e.title, first_due(e.trigger_at, e.context), e.recurrence_rule, undelivered=e.status)
            for e in undelivered
        ]

    async def cancel(self, user_id: int, reminder_id: int) -> bool:
        """Cancel one of the user's pending reminders; False when there is no such reminder of theirs."""
        async with self.database.session() as session:
            return await EventRepository(session).cancel_of(user_id, reminder_id)

    async def set_timezone(self, user_id: int, name: str) -> ZoneInfo:
        """Set the user's time zone. What comes back at a time of their day moves with them: the birthday
        greeting (BIRTHDAY_HOUR), follow-ups (asked in the evening) and repeating reminders keep their local time
        in the new zone, this time and the next ones (a repeating reminder whose time has passed there already
        comes next time; a greeting or follow-up whose hour has passed there comes on its day there, now if need
        be; one held back by quiet hours or the daily cap moves from the time it was due, not the time it waited
        for); a one-off reminder keeps the moment it was set for, unless its day or time of day was read in UTC
        (as its answer said, pointing here): that one moves to the time asked for, there. UTC itself is kept as
        UTC_CHOSEN, which tells it from no time zone set."""
        tz = time_zone(name)
        if tz.key == NO_TIME_ZONE:
            tz = ZoneInfo(UTC_CHOSEN)
        now = self.clock()
        async with self.database.session() as session:
            preferences = await UserRepository(session).preferences(user_id)
            previous, preferences.timezone = preferences.timezone, tz.key
            for event in await EventRepository(session).pending(user_id):
                # A follow-up keeps no zone of its own: it was put in the evening where its person lived then.
                was = zone_or_utc(event.context.get("tz", previous))
                if event.event_type in ("birthday", "follow_up"):
                    # One held back (quiet hours, the daily cap) goes from the time it was due, on its own day
                    # there, while that is still ahead: the reason it waited is weighed again there.
                    due = local_to_utc(to_local(first_due(event.trigger_at, event.context), was), tz)
                    event.trigger_at = due if due > now else same_wall_clock_in(event.trigger_at, was, tz, now=now)
                    if DUE_AT in event.context:  # and its day is that one there (talk of it from then on answers it)
                        event.context = {**event.context, DUE_AT: due.isoformat()}
                elif event.event_type == "reminder" and event.is_recurring and event.recurrence_rule:
                    anchor, wall = event.context.get("anchor_day"), event.context.get("local_time")
                    event.trigger_at = repeating_in(
                        event.trigger_at,
                        was,
                        tz,
                        event.recurrence_rule,
                        now=now,
                        anchor_day=int(anchor) if anchor else None,
                        local_time=time.fromisoformat(wall) if isinstance(wall, str) else None,
                    )
                elif event.event_type == "reminder" and event.context.get(ON_THE_CLOCK) and was.key == NO_TIME_ZONE:
                    # Read in UTC, which its answer said, pointing to /timezone set: now read where they live.
                    event.trigger_at = same_wall_clock_in(event.trigger_at, was, tz, now=now)
                else:
                    continue
                event.context = {**event.context, "tz": tz.key}  # and so its next times
        return tz

    async def set_birthday(self, user_id: int, month: int, day: int, year: int | None = None) -> datetime:
        """Remember the birthday and schedule the greeting (yearly, at BIRTHDAY_HOUR local time; 29 February is
        greeted on the 28th in other years), never twice in one year; returns when the next greeting goes out.
        Raises WhenError (nothing stored) for a birthday no one can have (see :func:`check_birthday`)."""
        now = self.clock()
        async with self.database.session() as session:
            return await schedule_birthday(session, user_id, month, day, year, now=now)

    async def greeting_of(self, user_id: int) -> "Greeting":
        """What becomes of the user's birthday greeting (see :class:`Greeting`), read once."""
        async with self.database.reading() as session:
            found = (await UserRepository(session).people([user_id])).get(user_id)
        preferences = found[1] if found is not None else None
        return Greeting(
            withheld=withheld(
                daily_cap=self.daily_cap, opted_out=preferences is not None and preferences.proactive_opt_out
            ),
            in_utc=_reads_in_utc(preferences.timezone if preferences is not None else None),
        )

    async def set_proactive(self, user_id: int, *, on: bool) -> None:
        """Turn the messages Hearth starts (birthday greetings, follow-ups) off or back on for the user, everywhere.
        Off, those already booked stay booked and are cancelled when due (see :mod:`bot.domain.unsolicited`), the
        next birthday's greeting with them booked as ever, so that on again brings greetings back from the next
        birthday; reminders the user asked for come either way."""
        async with self.database.session() as session:
            (await UserRepository(session).preferences(user_id)).proactive_opt_out = not on

    async def clear_birthday(self, user_id: int) -> None:
        async with self.database.session() as session:
            preferences = await UserRepository(session).preferences(user_id)
            preferences.birthday_month = preferences.birthday_day = preferences.birth_year = None
            await EventRepository(session).cancel_pending(user_id, "birthday")


async def schedule_birthday(
    session: AsyncSession, user_id: int, month: int, day: int, year: int | None, *, now: datetime
) -> datetime:
    """Remember the birthday and schedule its greeting in the caller's transaction (see
    :meth:`ReminderService.set_birthday`); returns when the next greeting goes out."""
    preferences = await UserRepository(session).preferences(user_id)
    tz = zone_or_utc(preferences.timezone)
    check_birthday(month, day, year, today=to_local(now, tz).date())
    same_day = (preferences.birthday_month, preferences.birthday_day) == (month, day)
    preferences.birthday_month, preferences.birthday_day, preferences.birth_year = month, day, year
    events = EventRepository(session)
    if same_day:
        # The same birthday again: its greetings are as they should be, this year's among them even when it is
        # waiting on the day itself (held back, or not yet sent), which scheduling from now would drop.
        waiting = await events.pending(user_id, event_type="birthday")
        if waiting:
            return waiting[0].trigger_at
    await events.cancel_pending(user_id, "birthday")
    at = next_birthday(month, day, now=now, tz=tz, local_hour=BIRTHDAY_HOUR)
    if await events.sent_today(user_id, since=at - GREETINGS_APART, unsolicited_types=("birthday",)):
        at = next_birthday(month, day, now=at, tz=tz, local_hour=BIRTHDAY_HOUR)  # greeted this year already
    await events.add(
        user_id=user_id,
        guild_id=None,
        channel_id=None,
        event_type="birthday",
        trigger_at=at,
        title="birthday",
        context={
            "tz": preferences.timezone,
            "anchor_day": day,
            "local_time": time(BIRTHDAY_HOUR).isoformat("minutes"),
        },
        recurrence_rule="yearly",
    )
    return at


def _reads_in_utc(timezone: str | None) -> bool:
    """Whether a time of day the user gave (or one of their day, as a greeting's) is read in UTC: until they set
    a time zone, which /timezone set moves it to."""
    return zone_or_utc(timezone).key == NO_TIME_ZONE


def _reminder_context(when: When, tz_name: str) -> dict[str, object]:
    """What a repeating reminder needs to find its next time: its zone, and its day and wall-clock time; and
    whether a one-off one was asked for on the user's clock (ON_THE_CLOCK)."""
    context: dict[str, object] = {"tz": tz_name}
    if when.recurrence is None and when.on_the_clock:
        context[ON_THE_CLOCK] = True
    if when.anchor_day is not None:
        context["anchor_day"] = when.anchor_day
    if when.local_time is not None:
        context["local_time"] = when.local_time.isoformat(timespec="minutes")
    return context
