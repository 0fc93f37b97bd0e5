"""Scheduled events: what Hearth will do later (follow-ups now; birthdays and reminders use the same table).

A claimed event carries the claim's random token, and every change after the claim names it: a process
changes only the rows it still holds. The states after a claim (see ``EVENT_STATUSES``): ``triggered`` (held,
not started), ``sending`` (committed just before the send), then ``sent``; ``unknown`` when a send may have
happened unrecorded. At most once: nothing ``sending`` or ``unknown`` ever goes back to ``pending``, except
on a delivery that definitely failed.
"""

import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import ScheduledEvent
from bot.db.repositories._dialect import dialect_name
from bot.db.repositories._plain import execute_plain
from bot.db.repositories._shards import on_shards
from bot.domain.recurrence import RECURRENCES, require_aware


@dataclass(frozen=True, slots=True)
class DueEvent:
    """A claimed event (status ``triggered``), detached from the session; ``claim_token`` names the claim."""

    id: int
    user_id: int
    guild_id: int | None
    channel_id: int | None
    event_type: str
    trigger_at: datetime
    title: str
    context: dict[str, Any]
    is_recurring: bool
    recurrence_rule: str | None
    attempts: int
    claim_token: str

    @property
    def due_at(self) -> datetime:
        """When the event was due: its ``trigger_at``, unless a retry or a postponement has moved that on."""
        return first_due(self.trigger_at, self.context)


def first_due(trigger_at: datetime, context: dict[str, Any]) -> datetime:
    """When an event (``trigger_at``, ``context``) was first due: a retry or a postponement moves ``trigger_at`` to
    its own time and keeps the time it replaced in the context (``DUE_AT``)."""
    kept = context.get(DUE_AT)
    return datetime.fromisoformat(kept) if isinstance(kept, str) else trigger_at


_DUE_COLUMNS = (
    ScheduledEvent.id,
    ScheduledEvent.user_id,
    ScheduledEvent.guild_id,
    ScheduledEvent.channel_id,
    ScheduledEvent.event_type,
    ScheduledEvent.trigger_at,
    ScheduledEvent.title,
    ScheduledEvent.context,
    ScheduledEvent.is_recurring,
    ScheduledEvent.recurrence_rule,
    ScheduledEvent.attempts,
    ScheduledEvent.claim_token,
)

# The context key of the time a retried or postponed event was first due (its ``trigger_at`` is then the later one).
DUE_AT = "due_at"

# Why an event ends ``unknown``: a send may have happened, so it is never sent again.
UNCERTAIN_STOPPED = "delivery uncertain: the process sending it stopped before recording the result"

# After the send: from ``sending``, or from ``unknown`` if another process gave up waiting for this one.
_SENT_OR_NOT = ("sending", "unknown")


def _held(*states: str) -> ColumnElement[bool]:
    """The events of the bound ``event_ids`` that the claim of the bound ``token`` holds in one of ``states``."""
    in_state = ScheduledEvent.status == states[0]
    for state in states[1:]:
        in_state = in_state | (ScheduledEvent.status == state)
    return (
        ScheduledEvent.id.in_(bindparam("event_ids", expanding=True))
        & (ScheduledEvent.claim_token == bindparam("token"))
        & in_state
    )


# The two marks around every send, built once (each event runs both; see execute_plain).
_BEGIN_SEND = (
    update(ScheduledEvent)
    .where(_held("triggered"))
    .values(status="sending", triggered_at=bindparam("at"), updated_at=bindparam("at"))
    .returning(ScheduledEvent.id)
)
_MARK_SENT = (
    update(ScheduledEvent)
    .where(_held(*_SENT_OR_NOT))
    .values(status="sent", triggered_at=bindparam("at"), updated_at=bindparam("at"))
    .returning(ScheduledEvent.id)
)


def _due_event(row: Row[Any]) -> DueEvent:
    return DueEvent(
        id=row.id,
        user_id=row.user_id,
        guild_id=row.guild_id,
        channel_id=row.channel_id,
        event_type=row.event_type,
        trigger_at=row.trigger_at,
        title=row.title,
        context=dict(row.context or {}),
        is_recurring=row.is_recurring,
        recurrence_rule=row.recurrence_rule,
        attempts=row.attempts,
        claim_token=row.claim_token,
    )


class EventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_follow_up(
        self,
        *,
        user_id: int,
        guild_id: int | None,
        channel_id: int | None,
        topic: str,
        question: str,
        trigger_at: datetime,
        context: dict[str, Any] | None = None,
    ) -> int | None:
        """A pending follow-up on ``topic`` for the user; None when one on that topic is pending already."""
        topic = " ".join(topic.split()).lower()
        pending = select(ScheduledEvent.id).where(
            ScheduledEvent.user_id == user_id,
            ScheduledEvent.event_type == "follow_up",
            ScheduledEvent.status == "pending",
            func.lower(ScheduledEvent.title) == topic,
        )
        if await self.session.scalar(pending.limit(1)) is not None:
            return None
        event = ScheduledEvent(
            user_id=user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            event_type="follow_up",
            trigger_at=trigger_at,
            title=topic,
            context={"question": question, **(context or {})},
        )
        self.session.add(event)
        await self.session.flush()
        return event.id

    async def pending(self, user_id: int, *, event_type: str | None = None) -> list[ScheduledEvent]:
        statement = select(ScheduledEvent).where(ScheduledEvent.user_id == user_id, ScheduledEvent.status == "pending")
        if event_type is not None:
            statement = statement.where(ScheduledEvent.event_type == event_type)
        return list((await self.session.scalars(statement.order_by(ScheduledEvent.trigger_at))).all())

    async def count_pending(self, user_id: int, *, event_type: str) -> int:
        """How many events of ``event_type`` wait for the user."""
        statement = select(func.count(ScheduledEvent.id)).where(
            ScheduledEvent.user_id == user_id,
            ScheduledEvent.event_type == event_type,
            ScheduledEvent.status == "pending",
        )
        return int(await self.session.scalar(statement) or 0)

    async def undelivered(self, user_id: int, *, event_type: str, since: datetime) -> list[ScheduledEvent]:
        """The user's events of ``event_type`` due since ``since`` that never reached them: ``missed`` (due while
        Hearth was stopped) or ``failed`` (Discord refused them, or could not be reached); the latest first."""
        require_aware(since, "since")
        statement = select(ScheduledEvent).where(
            ScheduledEvent.user_id == user_id,
            ScheduledEvent.event_type == event_type,
            ScheduledEvent.status.in_(("missed", "failed")),
            ScheduledEvent.trigger_at >= since,
        )
        return list((await self.session.scalars(statement.order_by(ScheduledEvent.trigger_at.desc()))).all())

    async def add(
        self,
        *,
        user_id: int,
        guild_id: int | None,
        channel_id: int | None,
        event_type: str,
        trigger_at: datetime,
        title: str,
        context: dict[str, Any] | None = None,
        recurrence_rule: str | None = None,
    ) -> int:
        """A pending event; recurring when it has a ``recurrence_rule`` (one of ``RECURRENCES``)."""
        require_aware(trigger_at, "trigger_at")
        if recurrence_rule is not None and recurrence_rule not in RECURRENCES:
            raise ValueError(f"recurrence_rule must be one of {', '.join(RECURRENCES)}, got {recurrence_rule!r}")
        event = ScheduledEvent(
            user_id=user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            event_type=event_type,
            trigger_at=trigger_at,
            title=title,
            context=dict(context or {}),
            is_recurring=recurrence_rule is not None,
            recurrence_rule=recurrence_rule,
        )
        self.session.add(event)
        await self.session.flush()
        return event.id

    async def requeue_stuck(self, *, claimed_before: datetime) -> tuple[int, int]:
        """Settle the claims made before ``claimed_before`` and never finished (the process that held them
        stopped); returns (put back, uncertain).

        An event still ``triggered`` provably never started sending: it goes back to ``pending`` (its claim
        token cleared) and is claimed again, or missed if too late. One left ``sending`` may have been
        delivered: it becomes ``unknown`` and is never sent again (its token stays, so a process that was only
        slow can still record the send)."""
        require_aware(claimed_before, "claimed_before")
        stale = ScheduledEvent.triggered_at < claimed_before
        requeued = (
            update(ScheduledEvent)
            .where(ScheduledEvent.status == "triggered", stale)
            .values(status="pending", claim_token=None)
            .returning(ScheduledEvent.id)
            .execution_options(synchronize_session=False)
        )
        uncertain = (
            update(ScheduledEvent)
            .where(ScheduledEvent.status == "sending", stale)
            .values(status="unknown", last_error=UNCERTAIN_STOPPED)
            .returning(ScheduledEvent.id)
            .execution_options(synchronize_session=False)
        )
        put_back = len((await self.session.execute(requeued)).all())
        return put_back, len((await self.session.execute(uncertain)).all())

    async def claim_due(
        self,
        *,
        now: datetime,
        limit: int,
        shards: tuple[Sequence[int], int] | None = None,
        types: Collection[str] | None = None,
        other_than: Collection[str] = (),
    ) -> list[DueEvent]:
        """Move up to ``limit`` pending events due by ``now`` to ``triggered`` under a new claim token and return
        them, oldest first; only events of ``types`` (None: any) and none of ``other_than``.

        One statement: on PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``, so concurrent claimers take
        disjoint batches without waiting; on SQLite the single writer serialises claimers and the ``status``
        guard keeps a row from being taken twice. The claim is the caller's to commit.
        """
        require_aware(now, "now")
        if limit < 1:
            return []
        picked = (
            select(ScheduledEvent.id)
            .where(ScheduledEvent.status == "pending", ScheduledEvent.trigger_at <= now)
            .order_by(ScheduledEvent.trigger_at, ScheduledEvent.id)
            .limit(limit)
        )
        if shards is not None:  # (this process's shard ids, the shard count)
            picked = picked.where(on_shards(ScheduledEvent.guild_id, *shards))
        if types is not None:
            picked = picked.where(ScheduledEvent.event_type.in_(sorted(types)))
        if other_than:
            picked = picked.where(ScheduledEvent.event_type.not_in(sorted(other_than)))
        if dialect_name(self.session) == "postgresql":
            picked = picked.with_for_update(skip_locked=True, of=ScheduledEvent)
        due = picked.cte("due")
        statement = (
            update(ScheduledEvent)
            .where(ScheduledEvent.id.in_(select(due.c.id)), ScheduledEvent.status == "pending")
            .values(status="triggered", triggered_at=now, updated_at=now, claim_token=secrets.token_hex(16))
            .returning(*_DUE_COLUMNS)
            .execution_options(synchronize_session=False)
        )
        rows = (await self.session.execute(statement)).all()
        return sorted((_due_event(row) for row in rows), key=lambda event: (event.trigger_at, event.id))

    async def _finish(self, event: DueEvent, states: Sequence[str], values: dict[str, Any]) -> bool:
        """Apply ``values`` to ``event`` if this claim still holds it in one of ``states``; False when it does not
        (another process took it back, or it is finished): then nothing changes."""
        statement = (
            update(ScheduledEvent)
            .where(
                ScheduledEvent.id == event.id,
                ScheduledEvent.claim_token == event.claim_token,
                ScheduledEvent.status.in_(states),
            )
            .values(**values)
            .returning(ScheduledEvent.id)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(statement)).first() is not None

    async def spent(self, event: DueEvent, *, model: str, prompt_tokens: int, completion_tokens: int) -> bool:
        """Add what the model spent writing ``event``'s message to what the event has spent (a send tried again
        was written again); counted as a reply's tokens are (``StatsRepository``, the daily roll-up)."""
        return await self._finish(
            event,
            ("triggered",),
            {
                "model": model,
                "prompt_tokens": func.coalesce(ScheduledEvent.prompt_tokens, 0) + prompt_tokens,
                "completion_tokens": func.coalesce(ScheduledEvent.completion_tokens, 0) + completion_tokens,
            },
        )

    async def begin_send(self, event: DueEvent, *, at: datetime) -> bool:
        """Record that ``event`` is about to be sent (``sending``, at ``at``). Commit it BEFORE sending: False
        means the claim no longer holds it, and it must not be sent."""
        return event.id in await self.begin_sends([event], at=at)

    async def begin_sends(self, events: Sequence[DueEvent], *, at: datetime) -> set[int]:
        """:meth:`begin_send` for events all about to be sent now (one statement per claim); returns the ids of
        those still held, the only ones that may be sent."""
        return await self._by_claim(_BEGIN_SEND, events, at)

    async def mark_sent(self, event: DueEvent, *, at: datetime) -> bool:
        return event.id in await self.mark_sent_each([event], at=at)

    async def mark_sent_each(self, events: Sequence[DueEvent], *, at: datetime) -> set[int]:
        """:meth:`mark_sent` for events each already sent (one statement per claim); returns the ids marked."""
        return await self._by_claim(_MARK_SENT, events, at)

    async def _by_claim(self, statement: Any, events: Sequence[DueEvent], at: datetime) -> set[int]:
        require_aware(at, "at")
        claims: dict[str, list[int]] = {}
        for event in events:
            claims.setdefault(event.claim_token, []).append(event.id)
        done: set[int] = set()
        for token, ids in claims.items():
            parameters = {"event_ids": ids, "token": token, "at": at}
            done.update((await execute_plain(self.session, statement, parameters)).scalars())
        return done

    async def mark_uncertain(self, event: DueEvent, *, error: str) -> bool:
        """A send that may or may not have happened: ``unknown``, never sent again."""
        return await self._finish(event, ("sending",), {"status": "unknown", "last_error": error})

    async def mark_missed(self, event: DueEvent, *, at: datetime) -> bool:
        require_aware(at, "at")
        return await self._finish(event, ("triggered",), {"status": "missed", "triggered_at": at, "updated_at": at})

    async def retry_later(self, event: DueEvent, *, at: datetime, error: str) -> bool:
        """Put an event whose send definitely failed back to ``pending`` at ``at``, counting the attempt. The time
        it was due is kept in its context (``DUE_AT``): a late reminder says since when, a list shows when."""
        require_aware(at, "at")
        return await self._finish(
            event,
            _SENT_OR_NOT,
            {
                "status": "pending",
                "trigger_at": at,
                "context": {**event.context, DUE_AT: event.due_at.isoformat()},
                "attempts": ScheduledEvent.attempts + 1,
                "last_error": error,
                "claim_token": None,
            },
        )

    async def postpone(self, event: DueEvent, *, at: datetime) -> bool:
        """Put a claimed, unsent event back to ``pending`` at ``at`` without counting an attempt (quiet hours, a
        cap). The time it was due is kept in its context (``DUE_AT``), as a retry keeps it: a follow-up held past
        midnight still belongs to its own day."""
        require_aware(at, "at")
        return await self._finish(
            event,
            ("triggered",),
            {
                "status": "pending",
                "trigger_at": at,
                "context": {**event.context, DUE_AT: event.due_at.isoformat()},
                "claim_token": None,
            },
        )

    async def cancel_triggered(self, event: DueEvent) -> bool:
        """Cancel a claimed event that is not to be sent (its user opted out)."""
        return await self._finish(event, ("triggered",), {"status": "cancelled"})

    async def mark_failed(self, event: DueEvent, *, error: str) -> bool:
        """Give up on an event whose send definitely failed, counting the attempt."""
        return await self._finish(
            event, _SENT_OR_NOT, {"status": "failed", "attempts": ScheduledEvent.attempts + 1, "last_error": error}
        )

    async def cancel_of(self, user_id: int, event_id: int) -> bool:
        """Cancel one of the user's pending events; False when it is not theirs or not pending."""
        statement = (
            update(ScheduledEvent)
            .where(
                ScheduledEvent.id == event_id,
                ScheduledEvent.user_id == user_id,
                ScheduledEvent.status == "pending",
            )
            .values(status="cancelled")
            .returning(ScheduledEvent.id)
        )
        return (await self.session.execute(statement)).scalar_one_or_none() is not None

    async def cancel_pending(self, user_id: int, event_type: str) -> int:
        """Cancel every pending event of this type for the user (a birthday that changed); returns how many."""
        statement = (
            update(ScheduledEvent)
            .where(
                ScheduledEvent.user_id == user_id,
                ScheduledEvent.event_type == event_type,
                ScheduledEvent.status == "pending",
            )
            .values(status="cancelled")
            .returning(ScheduledEvent.id)
        )
        return len((await self.session.execute(statement)).all())

    async def cancel(self, event_id: int) -> bool:
        """Cancel a pending event; False when it is not pending (claimed, done or gone)."""
        statement = (
            update(ScheduledEvent)
            .where(ScheduledEvent.id == event_id, ScheduledEvent.status == "pending")
            .values(status="cancelled")
            .returning(ScheduledEvent.id)
            .execution_options(synchronize_session="fetch")
        )
        return (await self.session.execute(statement)).scalar_one_or_none() is not None

    async def schedule_next(self, event: DueEvent, next_at: datetime) -> int:
        """Insert the next occurrence of the recurring ``event`` at ``next_at`` (from ``next_occurrence``), and
        hand the recurrence over to it: ``event`` stops being recurring (its rule stays, for the record), so a
        claim of it again (postponed, retried, put back) schedules no second next occurrence.

        The context is copied, so an anchor day or local time kept there carries over to the next occurrence.
        Call it in the transaction that claims or marks ``event``, so an occurrence is never lost or doubled.
        """
        if not event.is_recurring or event.recurrence_rule is None:
            raise ValueError(f"event {event.id} does not recur")
        handed_over = (
            update(ScheduledEvent)
            .where(ScheduledEvent.id == event.id)
            .values(is_recurring=False)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(handed_over)
        return await self.add(
            user_id=event.user_id,
            guild_id=event.guild_id,
            channel_id=event.channel_id,
            event_type=event.event_type,
            trigger_at=next_at,
            title=event.title,
            context={key: value for key, value in event.context.items() if key != DUE_AT},
            recurrence_rule=event.recurrence_rule,
        )

    async def sent_today(self, user_id: int, *, since: datetime, unsolicited_types: Sequence[str]) -> int:
        """How many events of ``unsolicited_types`` were sent to the user since ``since`` (for a daily cap); one
        being sent, or that may have been, counts."""
        require_aware(since, "since")
        types = [unsolicited_types] if isinstance(unsolicited_types, str) else list(unsolicited_types)
        if not types:
            return 0
        statement = select(func.count(ScheduledEvent.id)).where(
            ScheduledEvent.user_id == user_id,
            ScheduledEvent.status.in_(("sending", "sent", "unknown")),
            ScheduledEvent.triggered_at >= since,
            ScheduledEvent.event_type.in_(types),
        )
        return int(await self.session.scalar(statement) or 0)
