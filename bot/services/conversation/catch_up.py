"""Answering, after a start, the messages stored before a stop that never got their reply.

Discord does not send a stopped bot what it missed, but every message Hearth would answer was stored first,
marked as awaiting its reply. Each is claimed in the database before it is answered, so it is answered once,
across restarts and processes (a crash mid-answer loses that answer rather than repeating it). A stop lets the turn
being answered finish and begins no other; one that cuts the catch-up short leaves the messages of the turn being
answered, and of those after it, waiting for the next start, as a live reply cut short leaves its message.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

from bot.db.repositories.conversations import AwaitingMessage
from bot.domain.triggers import MessageSignals
from bot.services.conversation.config import StoredTurn
from bot.services.conversation.gone import GoneChannels
from bot.services.conversation.holds import Holds
from bot.services.conversation.intake import Intake, storable
from bot.services.conversation.responder import Responder
from bot.services.conversation.store import TurnStore
from bot.services.conversation.turns import Turns
from bot.services.incoming import Author, IncomingMessage, Place, Reached, ReplyTarget

log = logging.getLogger(__name__)


def no_thread(channel_id: int) -> int | None:
    """A front end without threads: every channel is one of its own."""
    return None


def never() -> bool:
    """A front end that is never stopped while it catches up."""
    return False


def incoming_of(row: AwaitingMessage, *, parent_channel_id: int | None = None) -> IncomingMessage:
    """A stored message as the front end would have handed it in (the channel's name is not stored, nor the
    channel a thread is in: ``parent_channel_id``, which only the front end knows, and by which the thread plays
    its channel's persona and cast as it did when the message came)."""
    author = Author(
        discord_id=row.author_discord_id, username=row.username, display_name=row.display_name, nickname=row.nickname
    )
    place = Place(channel_id=row.channel_id, guild_id=row.guild_discord_id, guild_name=row.guild_name)
    return IncomingMessage(
        author=author,
        place=place,
        text=row.content,
        created_at=row.created_at,
        signals=MessageSignals(
            text=row.content,
            author_id=row.author_discord_id,
            channel_id=row.channel_id,
            is_dm=place.is_dm,
            parent_channel_id=parent_channel_id,
        ),
        message_id=row.discord_message_id,
        image_urls=row.image_urls,
    )


def stored_of(row: AwaitingMessage, incoming: IncomingMessage, *, changes_seen: int = 0) -> StoredTurn:
    """The turn ``row`` makes in a batch, ``incoming`` being that same message as it reads now (its text, and its
    author's name as shown there): each message of a batch is its own turn. ``changes_seen``: the changes to stored
    turns heard of before it was read (see :meth:`TurnStore.as_stored`)."""
    return StoredTurn(
        message_row_id=row.message_id,
        conversation_id=row.conversation_id,
        user_id=row.user_id,
        guild_id=row.guild_id,
        speaker=incoming.author.shown_name,
        text=incoming.text,
        # Shown as a live message's are: catch-up and the 🔄 button reach back at most a day, about how long
        # Discord's links last (a link that has expired costs the model a refused call, not the reply).
        images=row.image_urls,
        changes_seen=changes_seen,
        discord_message_id=row.discord_message_id,
    )


class CatchUp:
    def __init__(
        self,
        intake: Intake,
        store: TurnStore,
        turns: Turns,
        holds: Holds,
        responder: Responder,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.intake = intake
        self.store = store
        self.turns = turns
        self.holds = holds
        self.responder = responder
        self.clock = clock

    async def run(
        self,
        within: timedelta,
        target_for: Callable[[IncomingMessage], Awaitable[Reached | None]],
        *,
        thread_parent: Callable[[int], int | None] = no_thread,
        limit: int = 500,
        gone: GoneChannels | None = None,
        stopping: Callable[[], bool] = never,
    ) -> int:
        """Answer the messages stored in the last ``within`` that never got their reply, oldest first, telling the
        model it was away (``limit`` of them at most); returns how many turns were answered. ``target_for`` finds
        a stored message again: as it reads now (an edit made meanwhile already stored) and where to answer it, or
        None when this process cannot (another shard's channel): those are left for the process that can, and do
        not count towards ``limit``. A message found with no target is not to be answered (its thread was archived
        meanwhile): it is settled unanswered, so that no later start answers it out of place either.
        ``thread_parent``: the channel a thread is in, None for a channel of its own (see :func:`incoming_of`).
        ``gone``: the channels deleted meanwhile, where a turn ends without asking the model (its messages already
        claimed); one whose reply Discord refuses as deleted is added, for the turns waiting there after it.
        ``stopping``: whether the front end began to stop, and starts no new reply: the turn being answered is
        finished, and the turns after it are left waiting for the next start."""
        if within <= timedelta(0) or self.holds.resting:
            return 0
        gone = GoneChannels() if gone is None else gone
        since = self.clock() - within
        seen = self.store.changes  # an edit or a deletion from now on: a turn reads its messages again
        waiting = 0
        reachable: list[tuple[AwaitingMessage, IncomingMessage, ReplyTarget]] = []
        not_answered: list[int] = []
        # Read in pages, past the messages left for other processes (they stay waiting, and may be the oldest by
        # far), until ``limit`` of this process's own are found or none are left.
        page = await self.store.awaiting_reply(since=since, limit=limit)
        while page:
            for row in page:
                if len(reachable) >= limit:
                    break
                waiting += 1
                reached = await target_for(incoming_of(row, parent_channel_id=thread_parent(row.channel_id)))
                if reached is None:
                    continue
                if reached.target is None:
                    not_answered.append(row.message_id)
                else:  # as it reads now: the images its author removed meanwhile are gone from it
                    row = replace(row, image_urls=reached.message.image_urls)
                    reachable.append((row, storable(reached.message), reached.target))
            if len(page) < limit or len(reachable) >= limit:
                break
            page = await self.store.awaiting_reply(since=since, limit=limit, after=page[-1].message_id)
        if not_answered:
            await self.store.settle(not_answered)
        claimed = set(await self.store.settle([row.message_id for row, _, _ in reachable]))
        # One turn per person and channel, as live messages sent together are answered together.
        turns: dict[tuple[int, int], list[tuple[AwaitingMessage, IncomingMessage, ReplyTarget]]] = {}
        for item in reachable:
            if item[0].message_id in claimed:
                turns.setdefault((item[0].channel_id, item[0].author_discord_id), []).append(item)
        answered = 0
        ahead = list(turns.values())  # the turns not over yet
        try:
            while ahead:
                if stopping():
                    log.info("stopping: %d turns of the catch-up are left for the next start", len(ahead))
                    await self.store.reopen([item_row.message_id for items in ahead for item_row, _, _ in items])
                    break
                row = ahead[0][-1][0]
                try:
                    answered += await self._turn(ahead[0], gone, seen) == "replied"
                except Exception:  # one message must not stop the others being answered
                    log.exception("could not catch up on message %s in channel %s", row.message_id, row.channel_id)
                del ahead[0]
        except asyncio.CancelledError:  # a stop cut it short: the turn being answered, and those after, are not over
            await self.store.reopen([item_row.message_id for items in ahead for item_row, _, _ in items])
            raise
        if waiting:
            log.info("caught up: %d of %d waiting messages answered in %d turns", len(claimed), waiting, answered)
        return answered

    async def _turn(
        self, items: list[tuple[AwaitingMessage, IncomingMessage, ReplyTarget]], gone: GoneChannels, seen: int
    ) -> str | None:
        """Answer one person's waiting messages in one channel, ``items``; the turn's status, None when it ended
        without asking (its channel or its messages deleted meanwhile)."""
        row, incoming, target = items[-1]
        batch = [stored_of(item_row, item, changes_seen=seen) for item_row, item, _ in items]
        async with self.turns.answering(row.channel_id):
            if row.channel_id in gone:
                log.info("not catching up in channel %s: it was deleted meanwhile", row.channel_id)
                return None
            # As its messages now read: one may have been edited or deleted while the turn waited.
            batch = await self.store.as_stored(batch)
            if not batch:
                log.info("not catching up on message %s: deleted meanwhile", row.message_id)
                return None
            # The last message still there is answered, by the cast character it names (as live): not one named in a
            # message deleted meanwhile, whom nobody asks any more.
            kept = batch[-1].message_row_id
            incoming = next(item for item_row, item, _ in items if item_row.message_id == kept)
            decision = await self.intake.speaker_of(incoming)
            if decision.in_cast:
                target = target.speaking_as(decision.persona.name, decision.persona.avatar_url)
            if incoming.message_id is not None and incoming.message_id != items[-1][1].message_id:
                target.reply_to(incoming.message_id)  # the one the reply was to answer is gone
            outcome = await self.responder.answer(
                incoming,
                batch,
                decision.persona,
                decision.settings,
                target,
                started=time.perf_counter(),
                was_away=True,
                host=decision.host,
            )
            if outcome.status == "gone":  # before the channel is let go: the turns waiting there end too
                gone.add(row.channel_id)
        return outcome.status
