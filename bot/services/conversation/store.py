"""Storing a conversation's turns: the user's message before anything else, Hearth's reply once delivered.

Every stored turn's memory is written in the transaction that stores it, without a vector (the word search
finds it at once); the embedding worker fills the vector in the background (bot/services/embedding_worker.py).

The database may be restarting or dropping connections at any moment. Storing a message, and the reply to it,
retries with backoff for up to ``store_budget_s`` (longer than a restart takes). Reading the history degrades to
what this process holds (:class:`~bot.services.recent.RecentTurns`); a reply already delivered that still cannot
be stored is logged, never shown.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from bot.db.engine import DATABASE_FAULTS, Database
from bot.db.models import Message
from bot.db.repositories.conversations import AlreadyStored, AwaitingMessage, ConversationRepository, HistoryRow
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.db.repositories.privacy import PrivacyRepository
from bot.domain.memory_text import context_line, with_images
from bot.domain.text import clean_text
from bot.services.conversation.config import StoredTurn
from bot.services.database_retry import through_database_faults
from bot.services.directory import Directory, Identity
from bot.services.incoming import IncomingMessage, Place
from bot.services.locks import KeyedLocks
from bot.services.recent import RecentTurns

log = logging.getLogger(__name__)


def _nothing(*_: object) -> None:
    pass


class TurnStore:
    """Conversations, messages and their memories, as the conversation stages need them.

    ``remember``: write a memory row with each stored turn (long-term memory is on); ``remembered`` is told
    when such rows were written (the embedding worker's wake-up), ``observed`` which conversation a user's
    message was added to (the learner's). ``describe``: a remembered message's images are to be described into
    its memory (left pending in the database), and ``images_stored`` is told when there are some (the image
    describer's wake-up)."""

    def __init__(
        self,
        database: Database,
        directory: Directory,
        *,
        idle: timedelta,
        history_turns: int,
        store_budget_s: float,
        remember: bool,
        remembered: Callable[[], None] = _nothing,
        observed: Callable[[int], None] = _nothing,
        describe: bool = False,
        images_stored: Callable[[], None] = _nothing,
    ) -> None:
        self.database = database
        self.directory = directory
        self.idle = idle
        self.store_budget_s = store_budget_s
        self.remember = remember
        self.remembered = remembered
        self.observed = observed
        self.describe = describe and remember
        self.images_stored = images_stored
        self._locks = KeyedLocks()
        # channel → (open conversation, its DM user or None, last message time): saves a lookup per message.
        # The database stays the authority: a stale entry only costs the lookup it was meant to save.
        self._open: dict[int, tuple[int, int | None, datetime]] = {}
        self.recent = RecentTurns(history_turns)
        # Changes to stored turns heard of (an edit or a deletion, here or in another process: see forget): a turn
        # stored before the last of them is read again before it is answered.
        self._changes = 0

    async def reset(self, channel_id: int, *, at: datetime) -> int:
        """End the channel's current conversation: its next message starts a new one, with no history. Memories
        and facts stay. Returns how many conversations were closed (0: none was going)."""
        async with self._locks.hold(channel_id):  # not between a message's lookup of its conversation and its insert
            async with self.database.session() as session:
                closed = await ConversationRepository(session).close_in_channel(channel_id=channel_id, at=at)
            self._open.pop(channel_id, None)
        for conversation_id in closed:
            self.recent.forget(conversation_id)
        return len(closed)

    @property
    def changes(self) -> int:
        """How many changes to stored turns this store has heard of so far (see :meth:`as_stored`)."""
        return self._changes

    def forget(self) -> None:
        """Drop what this store remembers of stored rows: call it after deleting users or messages."""
        self._changes += 1
        self.directory.forget()
        self._open.clear()
        self.recent.forget()

    # -- the user's message ---------------------------------------------------------------------------------

    async def store_incoming(self, incoming: IncomingMessage, *, awaiting_reply: bool) -> StoredTurn | None:
        """Store the message (and who and where), retrying with backoff for up to ``store_budget_s`` while the
        database fails (a restart takes seconds; killed connections fail one statement each).
        ``awaiting_reply``: left for the next start's catch-up if no reply is stored. None: the message was stored
        already, from an earlier delivery of it (Discord replays events; another process may have received it),
        which is the one answered."""

        async def once(attempt: int) -> StoredTurn:
            async with self._locks.hold(incoming.place.channel_id):
                return await self._store_once(incoming, awaiting_reply=awaiting_reply, retry=attempt > 1)

        # The database refusing the row: once more with fresh lookups (a cached row deleted elsewhere), no more.
        try:
            return await through_database_faults(
                once,
                what=f"storing message {incoming.message_id}",
                budget_s=self.store_budget_s,
                refusal_tries=2,
                before_retry=self.forget,  # a cached row may be what failed (deleted elsewhere): look all up afresh
            )
        except AlreadyStored:  # its transaction rolled back: nothing of this delivery is kept
            log.info("message %s was delivered again; it is answered once", incoming.message_id)
            return None

    async def _store_once(self, incoming: IncomingMessage, *, awaiting_reply: bool, retry: bool) -> StoredTurn:
        """One try at storing; on a ``retry`` the message may be there already (its commit went through but the
        answer was lost with the connection), and is not stored twice."""
        at, place = incoming.created_at, incoming.place
        async with self.database.session() as session:
            identity = await self.directory.record(session, incoming.author, place, at)
            repo = ConversationRepository(session)
            dm_user = identity.user_id if place.is_dm else None
            found = None
            if retry and incoming.message_id is not None:
                found = await repo.find_user_message(discord_message_id=incoming.message_id, user_id=identity.user_id)
            text = clean_text(incoming.text)
            speaker = incoming.author.shown_name
            if found is not None:  # stored with its memory, in the transaction whose answer was lost
                conversation_id, message_id = found
            else:
                conversation_id, message_id = await self._add_incoming(
                    repo, incoming, identity, dm_user, awaiting_reply=awaiting_reply
                )
            stored = StoredTurn(
                message_row_id=message_id,
                conversation_id=conversation_id,
                user_id=identity.user_id,
                guild_id=identity.guild_id,
                speaker=speaker,
                text=text,
                images=incoming.image_urls,
                changes_seen=self._changes,
                discord_message_id=incoming.message_id,
            )
            if found is None:
                remembered = with_images(text, [None] * len(incoming.image_urls)) if incoming.image_urls else text
                await self._memory_of(MemoryRepository(session), stored, place, message_id, remembered, speaker, at)
        self._open[place.channel_id] = (conversation_id, dm_user, at)
        self.recent.add(conversation_id, HistoryRow(message_id, "user", text, speaker, at))
        if self.remember:
            self.remembered()
        if self.describe and incoming.image_urls:
            self.images_stored()
        self.observed(conversation_id)
        return stored

    async def _add_incoming(
        self,
        repo: ConversationRepository,
        incoming: IncomingMessage,
        identity: Identity,
        dm_user: int | None,
        *,
        awaiting_reply: bool,
    ) -> tuple[int, int]:
        """Add the user's message to the channel's open conversation; returns (conversation id, message id)."""
        at, place = incoming.created_at, incoming.place
        conversation_id = await self._open_conversation(repo, place.channel_id, identity.guild_id, dm_user, at)
        message_id = await repo.add_message(
            conversation_id=conversation_id,
            user_id=identity.user_id,
            role="user",
            content=incoming.text,
            at=at,
            discord_message_id=incoming.message_id,
            image_urls=incoming.image_urls,
            awaiting_reply=awaiting_reply,
            images_pending=self.describe,
        )
        return conversation_id, message_id

    async def _open_conversation(
        self, repo: ConversationRepository, channel_id: int, guild_id: int | None, dm_user: int | None, at: datetime
    ) -> int:
        """The channel's conversation if it is still going (no idle gap), else a new one."""
        active_since = at - self.idle
        cached = self._open.get(channel_id)
        if cached is not None and cached[1] == dm_user and cached[2] >= active_since:
            return cached[0]
        conversation = await repo.find_open(channel_id=channel_id, user_id=dm_user, active_since=active_since)
        if conversation is None:
            conversation = await repo.open(channel_id=channel_id, guild_id=guild_id, user_id=dm_user, at=at)
        return conversation.id

    async def _memory_of(
        self,
        memories: MemoryRepository,
        turn: StoredTurn,
        place: Place,
        message_id: int,
        text: str,
        speaker: str | None,
        at: datetime,
    ) -> None:
        """Write a stored turn's memory in the transaction that stores it, without a vector (the embedding worker
        adds it). Hearth's own turns have no speaker ("you" in a prompt), a cast character's carry its name. Its
        context, the turn before it, comes from the recent turns this process knows of (none for a conversation's
        first turn after a start)."""
        if not self.remember or not text.strip():
            return
        before = self.recent.last(turn.conversation_id)
        context = context_line(before.speaker or "you", before.content) if before is not None else None
        memory = NewMemory(
            kind="message",
            content=text,
            scope="guild" if turn.guild_id is not None else "dm",
            created_at=at,
            user_id=turn.user_id,
            guild_id=turn.guild_id,
            channel_id=place.channel_id,
            channel_name=place.channel_name,
            conversation_id=turn.conversation_id,
            message_id=message_id,
            speaker_name=speaker,
            context=context,
        )
        await memories.add_many([memory], None, None)

    # -- reading ----------------------------------------------------------------------------------------------

    async def history(self, batch: Sequence[StoredTurn], *, leave_out: Sequence[int] = ()) -> list[HistoryRow]:
        """Everything said in the batch's conversation up to it (replies to others included), the batch itself
        and ``leave_out`` left out: from this process's recent turns, else read from the database."""
        last = batch[-1]
        exclude_ids = [turn.message_row_id for turn in batch] + list(leave_out)

        async def load(limit: int) -> list[HistoryRow]:
            async with self.database.session() as session:
                return await ConversationRepository(session).history(
                    last.conversation_id, up_to_id=last.message_row_id, exclude_ids=exclude_ids, limit=limit
                )

        return await self.recent.history(
            last.conversation_id, up_to_id=last.message_row_id, exclude_ids=exclude_ids, load=load
        )

    async def as_stored(self, batch: Sequence[StoredTurn]) -> list[StoredTurn]:
        """``batch`` as it is stored now: a message edited while it waited for its turn is answered as it now reads
        (its text, and the images it still shows), and one deleted meanwhile is left out (none left: all were
        deleted). Read again only when stored turns changed since the batch was stored; else, and when the
        database cannot be read, as it is."""
        if all(turn.changes_seen == self._changes for turn in batch):
            return list(batch)
        seen = self._changes
        try:
            async with self.database.reading() as session:
                rows = await ConversationRepository(session).messages_by_ids([turn.message_row_id for turn in batch])
        except DATABASE_FAULTS as exc:
            log.warning("could not read again the messages of conversation %s (%s)", batch[-1].conversation_id, exc)
            return list(batch)
        now = {row.id: row for row in rows}

        def current(turn: StoredTurn, row: Message) -> StoredTurn:
            images = tuple(str(url) for url in row.image_urls or ())
            return replace(turn, text=row.content, images=images, changes_seen=seen)

        return [current(turn, now[turn.message_row_id]) for turn in batch if turn.message_row_id in now]

    async def awaiting_reply(self, *, since: datetime, limit: int, after: int = 0) -> list[AwaitingMessage]:
        """Stored user messages that never got their reply (the bot stopped before it), oldest first, from the one
        after the message row ``after``."""
        async with self.database.session() as session:
            return await ConversationRepository(session).awaiting_reply(since=since, limit=limit, after=after)

    # -- the end of a turn ------------------------------------------------------------------------------------

    async def store_reply(
        self,
        incoming: IncomingMessage,
        batch: Sequence[StoredTurn],
        text: str,
        *,
        at: datetime,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        model: str | None,
        latency_ms: int,
        recalled: Sequence[int],
        shown_in: Sequence[int] = (),
        speaker: str | None = None,
        was_away: bool = False,
    ) -> None:
        """Store Hearth's reply (and mark the memories it drew on as recalled, and the messages it answers as
        answered), retrying while the database fails as storing a message does (the connections may have dropped
        while the model wrote); a failure past that is logged, never shown: the reply was already delivered.
        ``shown_in``: the Discord messages that show it, in order (its buttons on the last). ``speaker``: the cast
        character who said it (None: the channel's own persona), kept with the reply and its memory. ``was_away``: the
        catch-up's reply, to messages that came while Hearth was stopped (another answer to it is asked for so)."""
        last = batch[-1]
        cleaned = clean_text(text)

        async def once(attempt: int) -> int:
            """One try; on a retry the reply may be there already (its commit went through but the answer was lost
            with the connection), and is not stored twice."""
            async with self.database.session() as session:
                conversations = ConversationRepository(session)
                if attempt > 1:
                    found = await conversations.find_reply(conversation_id=last.conversation_id, at=at, content=text)
                    if found is not None:
                        return found
                await MemoryRepository(session).touch(list(recalled), now=at)
                await conversations.settle([turn.message_row_id for turn in batch])
                message_id = await conversations.add_message(
                    conversation_id=last.conversation_id,
                    user_id=last.user_id,
                    role="assistant",
                    content=text,
                    at=at,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    model=model,
                    latency_ms=latency_ms,
                    discord_message_id=shown_in[-1] if shown_in else None,
                    discord_part_ids=shown_in,
                    answered_ids=[turn.message_row_id for turn in batch],
                    speaker_name=speaker,
                    was_away=was_away,
                )
                memories = MemoryRepository(session)
                await self._memory_of(memories, last, incoming.place, message_id, cleaned, speaker, at)
            return message_id

        try:
            message_id = await through_database_faults(
                once, what=f"storing the reply to message {incoming.message_id}", budget_s=self.store_budget_s
            )
        except DATABASE_FAULTS:
            log.exception(
                "reply delivered but not stored (guild %s, channel %s, message %s, conversation %s)",
                incoming.place.guild_id,
                incoming.place.channel_id,
                incoming.message_id,
                last.conversation_id,
            )
            return
        self.recent.add(last.conversation_id, HistoryRow(message_id, "assistant", cleaned, speaker, at))
        if self.remember:
            self.remembered()

    def rewritten(self, conversation_id: int, message_id: int, content: str) -> None:
        """A stored turn's text changed (another alternative of a reply shown): the history follows it."""
        self.recent.replace(conversation_id, message_id, content)
        if self.remember:
            self.remembered()

    async def settle(self, message_ids: Sequence[int]) -> list[int]:
        """Mark messages as no longer awaiting a reply; returns those this call claimed (another process may
        have first). Raises on a database fault (see :meth:`settle_quietly`)."""
        async with self.database.session() as session:
            return list(await ConversationRepository(session).settle(list(message_ids)))

    async def reopen(self, message_ids: Sequence[int]) -> None:
        """Messages claimed by a catch-up whose turn a stop cut short, unanswered: awaiting their reply again, for the
        next start to give (a database fault is logged: they stay unanswered)."""
        try:
            async with self.database.session() as session:
                await ConversationRepository(session).reopen(list(message_ids))
        except DATABASE_FAULTS as exc:
            log.warning("could not leave messages %s for the next catch-up (%s)", list(message_ids), exc)

    async def withdraw(self, batch: Sequence[StoredTurn], discord_message_id: int | None) -> None:
        """The Discord message being answered was deleted (Discord refused the reply to it): its stored turn goes,
        with its memory, even where the deletion reached Hearth before the turn was stored; the rest of the batch
        is over without a reply."""
        try:
            async with self.database.session() as session:
                if discord_message_id is not None:
                    await PrivacyRepository(session).delete_turns([discord_message_id])
                await ConversationRepository(session).settle([turn.message_row_id for turn in batch])
        except DATABASE_FAULTS as exc:
            log.warning("could not forget message %s, deleted while answered (%s)", discord_message_id, exc)
        self.recent.forget(batch[-1].conversation_id)

    async def settle_quietly(self, batch: Sequence[StoredTurn]) -> None:
        """The batch's turn is over without a stored reply (held back, apologised): not for catching up later."""
        try:
            await self.settle([turn.message_row_id for turn in batch])
        except DATABASE_FAULTS as exc:
            log.warning("could not mark messages %s as handled (%s)", [t.message_row_id for t in batch], exc)
