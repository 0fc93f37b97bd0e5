"""Proactive messages: reminders, birthdays and follow-ups, fired from ``scheduled_events``.

The scheduler calls :meth:`EventService.tick` every few seconds, in two jobs: reminders, and the messages the
model writes (which may wait on it for the whole retry budget, where a reminder must not). A tick claims the due
events atomically (``EventRepository.claim_due``: two bot processes never fire one event twice), and in the same
transaction inserts the next occurrence of each recurring one. Each claimed event is then handled on its own:

- late by more than the grace period (the bot was down): marked missed; but a reminder the user asked for is
  sent once, late, saying when it was due, unless it is later than ``late_reminders`` (then missed too); a
  repeating one goes on at its next time after now (never a burst of every time it missed);
- a reminder the user asked for is always delivered, at once, in a fixed wording (no model needed);
- an unsolicited message (a birthday greeting, a follow-up) goes only to users who did not opt out, and in a
  guild only if its ``proactive`` setting is not off; never in the user's or the guild's quiet hours (both
  read in the user's time zone; postponed to their end), at most ``daily_cap`` a day per user (one held back
  by them for longer than ``held_back_at_most`` is missed); the model writes it in persona,
  from the event and what Hearth knows about the user, with a plain fallback if the model is unavailable or its
  message was cut off part way (half a greeting nobody asked for helps nobody); a model that
  thinks through all of the message's ``max_tokens`` before a word of it is asked once more with a reply's room;
- delivery goes through a :class:`Notifier` (``bot/discord/notifier.py``); a failure that may pass is retried
  with backoff a few times, then the event is marked failed with the error.

At most once, across faults and restarts: each event is marked ``sending`` (under its claim's token, committed)
just before its own send, and ``sent`` just after. A send that may have happened and was not recorded (the
process died, the mark after it failed, the notifier cannot tell whether Discord got it) is never repeated: the
event ends ``unknown``, with an error saying delivery is uncertain. Only an event that provably never started
sending (still ``triggered`` when its claim went stale, or when a database fault stopped it before its send)
or whose send definitely failed is tried again.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from bot.db.engine import DATABASE_FAULTS, DATABASE_REFUSALS, Database
from bot.db.models import User, UserPreferences
from bot.db.repositories.events import DueEvent, EventRepository
from bot.db.repositories.facts import FactRepository
from bot.db.repositories.guilds import GuildRepository
from bot.db.repositories.users import UserRepository
from bot.db.types import utcnow
from bot.domain.cut import was_cut
from bot.domain.guild_settings import quiet_hours_of
from bot.domain.prompt import ChatMessage
from bot.domain.recurrence import (
    catch_up,
    days_since_birthday,
    in_quiet_hours,
    local_to_utc,
    next_occurrence,
    quiet_hours_end,
    to_local,
    zone_or_utc,
)
from bot.domain.retry import Backoff
from bot.domain.unsolicited import withheld
from bot.errors import HearthError
from bot.llm.chat import ChatModel, ChatOptions, Completion, LLMUnavailable, NoRoomToAnswer
from bot.services.limits import TokenQuota
from bot.services.locks import KeyedLocks
from bot.services.personas import PersonaService

log = logging.getLogger(__name__)

UNSOLICITED = ("birthday", "follow_up")


class DeliveryFailed(HearthError):
    """The notifier could not deliver; ``retryable`` when trying again later may work (Discord 5xx, rate limits).

    ``maybe_sent`` when the message may have gone out all the same (a timeout after the request left, a failure
    after the first piece of a long message): then it is never tried again, whatever ``retryable`` says."""

    def __init__(self, message: str, *, retryable: bool, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.maybe_sent = maybe_sent


class Notifier(Protocol):
    async def deliver(self, *, user_discord_id: int, channel_id: int | None, text: str) -> Literal["channel", "dm"]:
        """Send ``text`` to the channel (if Hearth may write there), else by DM; raises DeliveryFailed."""
        ...


@dataclass(frozen=True, slots=True)
class EventsConfig:
    model: str
    grace: timedelta = timedelta(hours=1)  # an event later than this after its time is missed, not sent
    # ... except a reminder, sent late (saying so) up to this late: one the user asked for is better late than never.
    late_reminders: timedelta = timedelta(days=3)
    claim_batch: int = 200
    concurrency: int = 16  # events handled at once
    max_attempts: int = 4
    # A claim not finished after this long was left by a process that stopped: an event that never started
    # sending is claimed again; one that was being sent ends ``unknown`` (never sent twice).
    stuck_after: timedelta = timedelta(minutes=10)
    retry_backoff: Backoff = field(default_factory=lambda: Backoff(base_s=30.0, cap_s=900.0))
    daily_cap: int = 3  # unsolicited messages per user per (local) day; 0: none (cancelled when due)
    # An unsolicited message held back (quiet hours, the daily cap) still goes out up to this late, then is missed:
    # a birthday greeting as belated; a follow-up while "how did the exam go?" still asks about something recent.
    held_back_at_most: timedelta = timedelta(days=3)
    max_tokens: int = 200  # room for a message the model writes (a birthday greeting, a follow-up)
    # ... and for asking it again when its thinking took all of that before a word of the message (a reasoning
    # model's thinking counts in max_tokens): a reply's room (LLM_MAX_TOKENS).
    max_tokens_when_no_room: int = 600
    shards: tuple[tuple[int, ...], int] | None = None  # (shard ids, shard count): this process's guilds


# "unknown": a send that may have happened, not repeated; "released": the claim no longer held the event (another
# process took it back after ``stuck_after``), so this one left it alone.
Outcome = Literal["sent", "missed", "cancelled", "postponed", "retrying", "failed", "unknown", "released"]


@dataclass(frozen=True, slots=True)
class _Person:
    discord_id: int
    name: str
    tz: ZoneInfo
    proactive_opt_out: bool
    quiet: tuple[time, time] | None
    birthday: tuple[int, int] | None = None  # (month, day)


class EventService:
    def __init__(
        self,
        database: Database,
        chat: ChatModel,
        personas: PersonaService,
        notifier: Notifier,
        config: EventsConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
        quota: TokenQuota | None = None,
    ) -> None:
        self.quota = quota  # a guild past its daily token quota gets the plain wording, not a model call
        self.database = database
        self.chat = chat
        self.personas = personas
        self.notifier = notifier
        self.config = config
        self.clock = clock
        self._per_user = KeyedLocks()
        # The marks around each send, grouped: the events handled at once share a statement (a round trip each).
        self._begin_sends = _Grouped(self._begin_sends_now)
        self._mark_sent = _Grouped(self._mark_sent_now)
        # Events this process claimed and could not handle because the database failed before their send began:
        # put back at the next tick (as soon as the database lets them be), not left claimed until stuck_after.
        self._to_release: dict[int, DueEvent] = {}

    async def tick(self, *, unsolicited: bool | None = None) -> dict[Outcome, int]:
        """Claim what is due and handle it, batch after batch until nothing due is left; returns how many
        events ended each way. ``unsolicited``: only birthdays and follow-ups (True), whose wording may wait on
        the model, or only the rest (False): in jobs of their own, a reminder never waits for the model to write
        another message; None: every event."""
        counts: dict[Outcome, int] = {}
        await self._release_unhandled()
        if unsolicited is not True:  # every kind's, once a poll (by the reminders' job when the jobs are apart)
            await self._requeue_stuck()
        while True:
            claimed = await self._tick_once(counts, unsolicited)
            if claimed < self.config.claim_batch:
                return counts

    async def _requeue_stuck(self) -> None:
        async with self.database.session() as session:
            stuck, uncertain = await EventRepository(session).requeue_stuck(
                claimed_before=self.clock() - self.config.stuck_after
            )
        if stuck:
            log.warning("%d events were claimed but never started sending (a stop?); claiming them again", stuck)
        if uncertain:
            log.error("%d events were being sent when their process stopped; not sending them again", uncertain)

    async def _release_unhandled(self) -> None:
        """Put the events a database fault kept from being handled back to ``pending`` at their own time, to be
        claimed again (by this process or another). Only an event still ``triggered`` under this claim changes:
        one whose send began stays as it is (never sent twice)."""
        if not self._to_release:
            return
        unhandled = list(self._to_release.values())
        try:
            async with self.database.session() as session:
                events = EventRepository(session)
                for event in unhandled:
                    await events.postpone(event, at=event.trigger_at)
        except DATABASE_FAULTS as exc:
            # Still down: the tick itself fails next, and the scheduler says so (once, not at every tick).
            log.debug("%d events wait to be put back (%s); trying again at the next tick", len(unhandled), exc)
            return
        for event in unhandled:
            self._to_release.pop(event.id, None)

    async def _tick_once(self, counts: dict[Outcome, int], unsolicited: bool | None) -> int:
        now = self.clock()
        async with self.database.session() as session:
            events = EventRepository(session)
            due = await events.claim_due(
                now=now,
                limit=self.config.claim_batch,
                shards=self.config.shards,
                types=UNSOLICITED if unsolicited else None,
                other_than=UNSOLICITED if unsolicited is False else (),
            )
            for event in due:
                if event.is_recurring and event.recurrence_rule:
                    await events.schedule_next(event, self._next_time(event, now))
        if not due:
            return 0
        try:
            async with self.database.reading() as session:
                people = await UserRepository(session).people([event.user_id for event in due])
        except DATABASE_FAULTS:  # claimed, none handled: put back at the next tick rather than after stuck_after
            self._to_release.update((event.id, event) for event in due)
            raise
        # One person's unsolicited messages are handled in this order (see handle below), so when the daily cap
        # leaves room for one of those due together (held back to the same morning), it is the birthday greeting:
        # a follow-up can wait a day, a greeting cannot.
        due.sort(key=lambda event: (event.trigger_at, event.event_type != "birthday", event.id))
        gate = asyncio.Semaphore(self.config.concurrency)

        async def handle(event: DueEvent) -> None:
            async with gate:
                try:
                    found = people.get(event.user_id)
                    if found is None:
                        raise HearthError(f"user {event.user_id} of a scheduled event no longer exists")
                    # Unsolicited messages one at a time per user, so the daily cap holds within a tick.
                    one_by_one = event.event_type in UNSOLICITED
                    async with self._per_user.hold(event.user_id) if one_by_one else contextlib.nullcontext():
                        outcome = await self.handle(event, now=now, person=_person_of(*found))
                except DATABASE_FAULTS as exc:
                    if isinstance(exc, DATABASE_REFUSALS):  # the same again next time: left until stuck_after
                        log.exception("scheduled event %s could not be handled", event.id)
                        return
                    log.warning(
                        "scheduled event %s: the database failed (%s); put back unless its send began", event.id, exc
                    )
                    self._to_release[event.id] = event
                    return
                except Exception:  # a bug: the event stays claimed until stuck_after; logged for the owner
                    log.exception("scheduled event %s could not be handled", event.id)
                    return
                counts[outcome] = counts.get(outcome, 0) + 1

        await asyncio.gather(*(handle(event) for event in due))
        return len(due)

    async def handle(self, event: DueEvent, *, now: datetime, person: "_Person | None" = None) -> Outcome:
        """Deliver one claimed event, or decide not to (see the module notes)."""
        # A reminder is late from the time it was asked for, even when a retry has moved its trigger on.
        reminder = event.event_type == "reminder"
        due = event.due_at if reminder else event.trigger_at
        timing = catch_up(due, now, self.config.grace, late_until=self.config.late_reminders if reminder else None)
        if event.event_type in UNSOLICITED and now - event.due_at > self.config.held_back_at_most:
            due, timing = event.due_at, "missed"  # held back day after day (quiet hours, the cap): too late now
        if timing == "missed":
            await self._mark(lambda events: events.mark_missed(event, at=now))
            log.info("event %s (%s) missed: due %s", event.id, event.event_type, due.isoformat())
            return "missed"
        person = person or await self._person(event.user_id)
        if event.event_type in UNSOLICITED:
            held = await self._hold_back(event, person, now)
            if held is not None:
                return held
        text = await self._compose(event, person, now=now, late=timing == "late")
        # Committed before the send: from here on the event is never sent again, whatever happens next. If it
        # fails twice the event is put back at the next tick, unless the mark went through unseen (see tick).
        if not await self._grouped_then_alone(
            event, self._begin_sends, lambda events: events.begin_send(event, at=self.clock())
        ):
            log.warning("event %s: its claim went stale (another process took it back); not sending", event.id)
            return "released"
        try:
            await self.notifier.deliver(user_discord_id=person.discord_id, channel_id=event.channel_id, text=text)
        except DeliveryFailed as exc:
            if exc.maybe_sent:
                return await self._uncertain(event, f"delivery uncertain: {exc}")
            return await self._delivery_failed(event, exc, now)
        except Exception as exc:  # a bug in the notifier: the message may have gone out
            log.exception("event %s: the notifier failed", event.id)
            return await self._uncertain(event, f"delivery uncertain: {type(exc).__name__}: {exc}")
        await self._record_sent(event)
        return "sent"

    async def _record_sent(self, event: DueEvent) -> None:
        """Mark a delivered event sent. If it cannot be recorded it stays ``sending`` and ends ``unknown`` after
        ``stuck_after``: never sent again."""
        try:
            await self._grouped_then_alone(
                event, self._mark_sent, lambda events: events.mark_sent(event, at=self.clock())
            )
        except Exception as exc:
            log.error("event %s was sent, but recording it failed (%s); it will end 'unknown'", event.id, exc)

    async def _grouped_then_alone(
        self,
        event: DueEvent,
        grouped: "_Grouped",
        alone: Callable[[EventRepository], Awaitable[bool]],
    ) -> bool:
        """One of the marks around a send, in a group; if the group's statement fails (a dropped connection, or
        another event's fault), once more on its own. Raises when that fails too."""
        try:
            return await grouped(event)
        except Exception as exc:
            log.warning("event %s: marking it failed (%s); trying again on its own", event.id, exc)
        await asyncio.sleep(0.2)
        return await self._mark_at_once(alone)

    async def _uncertain(self, event: DueEvent, error: str) -> Outcome:
        log.error("event %s: %s; not sending it again", event.id, error)
        await self._mark(lambda events: events.mark_uncertain(event, error=error))
        return "unknown"

    async def _hold_back(self, event: DueEvent, person: _Person, now: datetime) -> Outcome | None:
        """Why an unsolicited message is not sent now: withheld from this person here (see
        :mod:`bot.domain.unsolicited`; a daily cap of 0 among them: cancelled, not put off to a next day that never
        has room); quiet hours or the daily cap (postponed); None when it may go."""
        guild: dict[str, Any] = {}
        if event.guild_id is not None:
            async with self.database.reading() as session:
                guild = await GuildRepository(session).settings_of(event.guild_id)
        server_allows = guild.get("proactive") is not False
        if withheld(daily_cap=self.config.daily_cap, opted_out=person.proactive_opt_out, server_allows=server_allows):
            await self._mark(lambda events: events.cancel_triggered(event))
            return "cancelled"
        # The user's quiet hours and the guild's, both read in the user's time zone.
        windows = [window for window in (person.quiet, quiet_hours_of(guild.get("quiet_hours"))) if window is not None]
        if any(in_quiet_hours(now, person.tz, *window) for window in windows):
            later = max(quiet_hours_end(now, person.tz, *window) for window in windows)
            await self._mark(lambda events: events.postpone(event, at=later))
            return "postponed"
        today = to_local(now, person.tz).date()
        local_midnight = local_to_utc(datetime.combine(today, time(0)), person.tz)
        async with self.database.session() as session:
            events = EventRepository(session)
            sent = await events.sent_today(event.user_id, since=local_midnight, unsolicited_types=UNSOLICITED)
            room = self.config.daily_cap - sent
            if room > 0 and event.event_type == "follow_up" and event.due_at < event.trigger_at:
                # Held back from its own time already, it can wait a day more: it leaves the day's last places to
                # the birthday greetings due later today, which would otherwise come a day late.
                next_midnight = local_to_utc(datetime.combine(today + timedelta(days=1), time(0)), person.tz)
                greetings = await events.pending(event.user_id, event_type="birthday")
                room -= sum(1 for greeting in greetings if greeting.trigger_at < next_midnight)
        if room <= 0:
            tomorrow = local_to_utc(datetime.combine(today + timedelta(days=1), time(10)), person.tz)
            await self._mark(lambda events: events.postpone(event, at=tomorrow))
            return "postponed"
        return None

    async def _delivery_failed(self, event: DueEvent, exc: DeliveryFailed, now: datetime) -> Outcome:
        attempt = event.attempts + 1
        if exc.retryable and attempt < self.config.max_attempts:
            later = now + timedelta(seconds=self.config.retry_backoff.delay(attempt))
            await self._mark(lambda events: events.retry_later(event, at=later, error=str(exc)))
            log.warning("event %s not delivered (%s); attempt %d, retrying at %s", event.id, exc, attempt, later)
            return "retrying"
        await self._mark(lambda events: events.mark_failed(event, error=str(exc)))
        log.error("event %s failed after %d attempts: %s", event.id, attempt, exc)
        return "failed"

    async def _compose(self, event: DueEvent, person: _Person, *, now: datetime, late: bool = False) -> str:
        if event.event_type == "reminder" and late:  # Discord shows the <t:…:R> stamp as "3 hours ago"
            return f"⏰ Reminder (late — it was due <t:{int(event.due_at.timestamp())}:R>): {event.title}"
        if event.event_type == "reminder":
            return f"⏰ Reminder: {event.title}"
        # A greeting held back (the daily cap, quiet hours) may go out after the day itself: the model is told so.
        days_since = (
            days_since_birthday(*person.birthday, to_local(now, person.tz).date())
            if event.event_type == "birthday" and person.birthday is not None
            else 0
        )
        if event.event_type != "birthday":
            fallback = str(event.context.get("question") or f"How did {event.title} go?")
        elif days_since:
            fallback = f"Happy belated birthday, {person.name}! 🎂"
        else:
            fallback = f"Happy birthday, {person.name}! 🎂"
        if event.guild_id is not None and self.quota is not None and await self.quota.exhausted_in(event.guild_id):
            return fallback
        persona = await self.personas.for_guild(event.guild_id)
        async with self.database.reading() as session:
            facts = await FactRepository(session).usable(event.user_id, guild_id=event.guild_id, now=self.clock())
        known = "\n".join(f"- {fact.content}" for fact in facts[-10:]) or "(nothing yet)"
        if event.event_type != "birthday":
            what = f"Earlier {person.name} mentioned {event.title}. Check in with them about it, e.g. {fallback!r}."
        elif days_since:
            when = "yesterday" if days_since == 1 else f"{days_since} days ago"
            what = (
                f"{person.name}'s birthday was {when} and you are only now wishing them well. Write them a short, "
                "warm, belated birthday message."
            )
        else:
            what = f"It is {person.name}'s birthday today. Write them a short, warm birthday message."
        messages = [
            ChatMessage("system", f"You are {persona.name}. {persona.card.personality}"),
            ChatMessage(
                "user",
                f"{what}\nWhat you know about {person.name}:\n{known}\n"
                "Write only the message, one to three sentences, in your own voice.",
            ),
        ]
        room, more_room = self.config.max_tokens, self.config.max_tokens_when_no_room
        try:
            try:
                completion = await self.chat.generate(messages, ChatOptions(model=self.config.model, max_tokens=room))
            except NoRoomToAnswer:  # it thought through all of them before a word of the message
                if more_room <= room:
                    raise
                log.info(
                    "event %s: the model thought away its %d tokens; asking again with %d", event.id, room, more_room
                )
                room = more_room
                completion = await self.chat.generate(messages, ChatOptions(model=self.config.model, max_tokens=room))
        except NoRoomToAnswer as exc:
            log.warning(
                "event %s: the model wrote no message within %d tokens (%s); sending the plain wording",
                event.id,
                room,
                exc,
            )
            return fallback
        except LLMUnavailable as exc:
            log.warning("event %s: the model is unavailable (%s); sending the plain wording", event.id, exc)
            return fallback
        await self._spent(event, completion)
        if was_cut(completion.finish_reason):  # half a greeting nobody asked for: the plain one, whole, instead
            log.warning(
                "event %s: the model's message was cut off (%s); sending the plain wording",
                event.id,
                completion.finish_reason,
            )
            return fallback
        return completion.text.strip() or fallback

    async def _spent(self, event: DueEvent, completion: Completion) -> None:
        """Keep what the model spent writing ``event``'s message with the event, where the counts of a reply's
        tokens read it (``/stats``, the usage report, the daily quota and roll-up), whatever becomes of the send."""
        prompt, written = completion.prompt_tokens, completion.completion_tokens
        await self._mark(
            lambda events: events.spent(event, model=completion.model, prompt_tokens=prompt, completion_tokens=written)
        )
        if event.guild_id is not None and self.quota is not None:
            self.quota.spent(event.guild_id, prompt + written)

    async def _person(self, user_id: int) -> _Person:
        async with self.database.reading() as session:
            found = (await UserRepository(session).people([user_id])).get(user_id)
        if found is None:
            raise HearthError(f"user {user_id} of a scheduled event no longer exists")
        return _person_of(*found)

    def _next_time(self, event: DueEvent, now: datetime) -> datetime:
        """The next occurrence of a recurring event after ``now``, in its own time zone (kept in its context).
        Those that fell while Hearth was stopped are passed over: this one stands for them (sent late, or
        missed), so a restart never brings a burst of them."""
        tz = zone_or_utc(event.context.get("tz"))
        anchor = event.context.get("anchor_day")
        wall = event.context.get("local_time")
        at = event.trigger_at
        while True:
            at = next_occurrence(
                at,
                str(event.recurrence_rule),
                tz,
                anchor_day=int(anchor) if anchor else None,
                local_time=time.fromisoformat(wall) if isinstance(wall, str) else None,
            )
            if at > now:
                return at

    async def _begin_sends_now(self, events: Sequence[DueEvent]) -> set[int]:
        async with self.database.one_statement_each() as session:
            return await EventRepository(session).begin_sends(events, at=self.clock())

    async def _mark_sent_now(self, events: Sequence[DueEvent]) -> set[int]:
        async with self.database.one_statement_each() as session:
            return await EventRepository(session).mark_sent_each(events, at=self.clock())

    async def _mark_at_once(self, change: Callable[[EventRepository], Awaitable[bool]]) -> bool:
        """:meth:`_mark` for a change that is one statement, committed as it runs (no BEGIN and COMMIT round
        trips: every event makes two such changes)."""
        async with self.database.one_statement_each() as session:
            return await change(EventRepository(session))

    async def _mark(self, change: Callable[[EventRepository], Awaitable[bool]]) -> bool:
        """Run one change of a claimed event in its own committed transaction; False when the claim no longer
        held the event."""
        async with self.database.session() as session:
            return await change(EventRepository(session))


class _Grouped:
    """Group commit for one kind of mark: the events that ask while a statement runs share the next one, so
    16 events handled at once cost a few round trips rather than 16. Each caller learns whether its own event
    was marked; a failed statement fails every caller in it (and marks none of them)."""

    def __init__(self, run: Callable[[Sequence[DueEvent]], Awaitable[set[int]]]) -> None:
        self._run = run
        self._queue: list[tuple[DueEvent, asyncio.Future[bool]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def __call__(self, event: DueEvent) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                done = await self._run([event for event, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            except BaseException:  # cancelled (the loop is closing): no caller waits for ever
                for _, future in batch + self._queue:
                    future.cancel()
                raise
            else:
                for event, future in batch:
                    if not future.done():
                        future.set_result(event.id in done)


def _person_of(user: User, preferences: UserPreferences | None) -> _Person:
    """Who an event is for, as the rules need them; no preferences row means the defaults (UTC, opted in)."""
    tz = zone_or_utc(preferences.timezone if preferences is not None else None)
    quiet = None
    if (
        preferences is not None
        and preferences.quiet_hours_start is not None
        and preferences.quiet_hours_end is not None
    ):
        quiet = (preferences.quiet_hours_start, preferences.quiet_hours_end)
    name = user.custom_name or user.discord_display_name or user.discord_username
    opted_out = preferences is not None and preferences.proactive_opt_out
    birthday = None
    if preferences is not None and preferences.birthday_month is not None and preferences.birthday_day is not None:
        birthday = (preferences.birthday_month, preferences.birthday_day)
    return _Person(user.discord_id, name, tz, opted_out, quiet, birthday)
