"""The calendar rules of the scheduler: when a repeating event fires next, when a birthday greeting goes out,
whether a moment falls in someone's quiet hours, and what to do with an event that is reached late.

Events are stored in UTC but people live by the wall clock, so every rule here works in the user's local time
and converts at the end. Daylight saving time forces two decisions, both made in :func:`local_to_utc`: a local
time the clocks skip (spring forward) moves on by the length of the gap, so 02:30 becomes 03:30; a local time the
clocks pass twice (fall back) means the first of the two.
"""

import calendar
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Recurrence = Literal["daily", "weekdays", "weekly", "monthly", "yearly"]
RECURRENCES: tuple[Recurrence, ...] = ("daily", "weekdays", "weekly", "monthly", "yearly")
CatchUp = Literal["fire", "late", "missed", "wait"]


def zone_or_utc(name: object) -> ZoneInfo:
    """The time zone a stored name stands for; UTC for none, or for a name this system's zone data lacks (a
    row written elsewhere): a time is then read in UTC rather than lost."""
    try:
        return ZoneInfo(str(name or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def require_aware(moment: datetime, name: str) -> None:
    """Refuse naive datetimes: a naive "now" silently means the server's zone, which is nobody's."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")


def local_to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of the wall-clock time ``local`` (its own tzinfo, if any, is ignored) in ``tz``.

    ``fold=0`` yields exactly the documented choices: in a gap zoneinfo applies the offset from before the
    change, which lands the length of the gap later; in an overlap it picks the first occurrence.
    """
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC)


def to_local(moment: datetime, tz: ZoneInfo) -> datetime:
    """The naive wall-clock time in ``tz`` at the aware instant ``moment``."""
    return moment.astimezone(tz).replace(tzinfo=None)


def start_of_day(moment: datetime, tz: ZoneInfo) -> datetime:
    """When the local day of ``moment`` in ``tz`` began, in UTC."""
    require_aware(moment, "moment")
    return local_to_utc(datetime.combine(to_local(moment, tz).date(), time()), tz)


def days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def clamp_day(year: int, month: int, day: int) -> date:
    """``day`` of the month, or the month's last day if it is shorter (the 31st in April is the 30th)."""
    return date(year, month, min(day, days_in_month(year, month)))


def add_months(year: int, month: int, count: int) -> tuple[int, int]:
    """The (year, month) ``count`` months after ``month`` of ``year``."""
    shifted_year, month_index = divmod(year * 12 + month - 1 + count, 12)
    return shifted_year, month_index + 1


def next_occurrence(
    previous: datetime,
    recurrence: str,
    tz: ZoneInfo,
    *,
    anchor_day: int | None = None,
    local_time: time | None = None,
) -> datetime:
    """The firing after ``previous`` (aware) of an event repeating ``recurrence``, in UTC.

    The event keeps its local wall-clock time across DST changes: "every day at 08:00" stays at 08:00 in ``tz``,
    so the gap in UTC is 23 or 25 hours on the days the clocks change.

    ``anchor_day`` is the day of the month the event was set for. Monthly events on the 31st fall on the last day
    of shorter months and return to the 31st afterwards; yearly events on 29 February fire on 28 February in
    years without one. Neither is recoverable from a clamped ``previous``, so callers keep the anchor; without it
    the local day of ``previous`` is used. Likewise ``local_time`` is the wall-clock time the event was set for:
    a time skipped by DST was moved an hour on, and only ``local_time`` brings it back the next day.
    """
    require_aware(previous, "previous")
    if anchor_day is not None and not 1 <= anchor_day <= 31:
        raise ValueError(f"anchor_day must be between 1 and 31, got {anchor_day}")
    local = to_local(previous, tz)
    wall = (local_time or local.time()).replace(tzinfo=None)
    day = local.date()
    anchor = anchor_day or day.day
    if recurrence == "daily":
        following = day + timedelta(days=1)
    elif recurrence == "weekdays":  # Monday to Friday
        following = day + timedelta(days=1)
        while following.weekday() >= 5:
            following += timedelta(days=1)
    elif recurrence == "weekly":
        following = day + timedelta(days=7)
    elif recurrence == "monthly":
        following = clamp_day(*add_months(day.year, day.month, 1), anchor)
    elif recurrence == "yearly":
        following = clamp_day(day.year + 1, day.month, anchor)
    else:
        raise ValueError(f"recurrence must be one of {', '.join(RECURRENCES)}, got {recurrence!r}")
    return local_to_utc(datetime.combine(following, wall), tz)


def next_birthday(month: int, day: int, *, now: datetime, tz: ZoneInfo, local_hour: int = 10) -> datetime:
    """When to send the next birthday greeting: ``local_hour`` o'clock on the birthday in ``tz``, in UTC.

    Strictly after ``now``: today while the hour is still ahead, otherwise next year, so a scheduler that has just
    sent today's greeting and asks again gets next year's. "Today" is the user's local date, not UTC's.
    A 29 February birthday is greeted on 28 February in years without one (still in February, and before the day
    is over everywhere).
    """
    require_aware(now, "now")
    if not 1 <= month <= 12 or not 1 <= day <= days_in_month(2000, month):
        raise ValueError(f"there is no day {day} in month {month}")
    if not 0 <= local_hour <= 23:
        raise ValueError(f"local_hour must be between 0 and 23, got {local_hour}")
    year = to_local(now, tz).year
    greeting = local_to_utc(datetime.combine(clamp_day(year, month, day), time(local_hour)), tz)
    if greeting <= now:
        greeting = local_to_utc(datetime.combine(clamp_day(year + 1, month, day), time(local_hour)), tz)
    return greeting


def days_since_birthday(month: int, day: int, today: date) -> int:
    """How many days ago, on the local date ``today``, the latest birthday (``month``/``day``) fell: 0 on the day,
    1 the day after. A 29 February birthday falls on 28 February in years without one, as it is greeted."""
    if not 1 <= month <= 12 or not 1 <= day <= days_in_month(2000, month):
        raise ValueError(f"there is no day {day} in month {month}")
    latest = clamp_day(today.year, month, day)
    if latest > today:
        latest = clamp_day(today.year - 1, month, day)
    return (today - latest).days


def same_wall_clock_in(at: datetime, was: ZoneInfo, tz: ZoneInfo, *, now: datetime) -> datetime:
    """The instant whose local date and time in ``tz`` are those of ``at`` in ``was``, in UTC: a greeting at
    10:00 stays at 10:00 when its user moves to another zone. When that instant has already passed, the
    occurrence is neither skipped nor sent twice: it keeps ``at`` while that is still on its day in ``tz``, and
    comes ``now`` when ``at`` falls on a later day there (moving east, a greeting at 10:00 in Los Angeles is at
    03:00 the next day in Tokyo)."""
    require_aware(at, "at")
    require_aware(now, "now")
    moved = local_to_utc(to_local(at, was), tz)
    if moved > now:
        return moved
    if at <= now or to_local(at, tz).date() <= to_local(moved, tz).date():
        return at
    return now


def repeating_in(
    at: datetime,
    was: ZoneInfo,
    tz: ZoneInfo,
    recurrence: str,
    *,
    now: datetime,
    anchor_day: int | None = None,
    local_time: time | None = None,
) -> datetime:
    """Where the next firing ``at`` (set in ``was``) of an event repeating ``recurrence`` goes when its user moves
    to ``tz``: the same local date and wall-clock time (``local_time``, if kept) there, in UTC. When that has
    already passed in ``tz``, the occurrence is behind the user, and the next one there after ``now`` comes
    instead: keeping ``at`` would fire at another hour of their day, and later occurrences, reckoned from its
    local date in ``tz``, could fall on another day of the week."""
    require_aware(at, "at")
    require_aware(now, "now")
    local = to_local(at, was)
    moved = local_to_utc(datetime.combine(local.date(), local_time or local.time()), tz)
    while moved <= now:
        moved = next_occurrence(moved, recurrence, tz, anchor_day=anchor_day, local_time=local_time)
    return moved


def in_quiet_hours(now: datetime, tz: ZoneInfo, start: time, end: time) -> bool:
    """Whether ``now`` falls in the local window [start, end), which may cross midnight (22:00–08:00).

    ``start == end`` means no quiet hours at all rather than a whole quiet day: an empty setting must not mute.
    """
    require_aware(now, "now")
    if start == end:
        return False
    clock = to_local(now, tz).time()
    start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end


def quiet_hours_end(now: datetime, tz: ZoneInfo, start: time, end: time) -> datetime:
    """When the quiet hours around ``now`` end, in UTC; ``now`` itself if it is not in quiet hours.

    If the end falls in a repeated hour (fall back) it is the first pass of that hour that is still ahead.
    """
    if not in_quiet_hours(now, tz, start, end):
        return now
    local = to_local(now, tz)
    end = end.replace(tzinfo=None)
    end_day = local.date()
    if start > end and local.time() >= start.replace(tzinfo=None):
        end_day += timedelta(days=1)
    wall = datetime.combine(end_day, end)
    first = local_to_utc(wall, tz)
    return first if first > now else wall.replace(tzinfo=tz, fold=1).astimezone(UTC)


def catch_up(due_at: datetime, now: datetime, grace: timedelta, *, late_until: timedelta | None = None) -> CatchUp:
    """What to do with an event due at ``due_at`` when the scheduler looks at it at ``now``.

    ``wait`` while it is not yet due; ``fire`` if it is due and at most ``grace`` late; ``late`` if later than
    that but at most ``late_until`` (given for events still worth sending late, saying so: a reminder); ``missed``
    if later than that (after downtime, say): "happy birthday" a day late is worse than saying it was missed.
    """
    require_aware(due_at, "due_at")
    require_aware(now, "now")
    if grace < timedelta(0):
        raise ValueError(f"grace must not be negative, got {grace}")
    if now < due_at:
        return "wait"
    if now - due_at <= grace:
        return "fire"
    return "late" if late_until is not None and now - due_at <= late_until else "missed"
