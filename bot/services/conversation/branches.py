"""Regenerating a reply (🔄) and moving between its answers (◀ ▶), each kept as a branch of the turn.

Only the person the reply answered may do either, while the reply is the latest in its conversation (a later
turn was built on it) and younger than ``expiry``. Regenerating asks the model again with the same context:
the same messages answered, the history before them, memories and what Hearth knows (and, for a reply given after a
restart to messages that came while Hearth was stopped, that it was away). The answer shown last
is the one the conversation continues from: the turn's stored message holds it, so the next prompt's
history, the learner and summaries read it, and the turn's memory is written anew from it (and embedded
again). The others stay stored as the turn's alternatives.
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from bot.db.engine import DATABASE_FAULTS, Database
from bot.db.repositories.alternatives import AlternativeRepository, SentReply, positions
from bot.db.repositories.memories import MemoryRepository
from bot.domain.text import clean_text
from bot.llm.chat import Completion, LLMUnavailable
from bot.services.conversation.catch_up import incoming_of, stored_of
from bot.services.conversation.holds import Holds
from bot.services.conversation.intake import Intake
from bot.services.conversation.responder import Responder
from bot.services.conversation.store import TurnStore
from bot.services.conversation.turns import Turns
from bot.services.incoming import ReplyTarget
from bot.services.locks import KeyedLocks

log = logging.getLogger(__name__)

BranchStatus = Literal[
    "shown",
    "not_yours",
    "expired",
    "moved_on",
    "unknown",
    "resting",
    "over_quota",
    "failed",
    "overtaken",
    "writing",
    "answering",
]


@dataclass(frozen=True, slots=True)
class BranchOutcome:
    """What a press did: ``shown`` with the answer now shown (``position`` of ``count``), else why not.
    ``failed``: the model could not answer, or its answer could not be kept; the answer shown before (``text``,
    ``position`` of ``count``) stays the one the conversation goes on from, and is to be shown again where the new
    one had begun to stream.
    ``overtaken``: likewise, the new answer coming after a later reply in the conversation, written from the
    answer shown (the new one is not kept). ``writing``: a reply is being written in the channel, going on from the
    answer shown, which stays.
    ``parts``: the Discord messages that show the reply, in order (an answer longer than a message takes several),
    where the answer is to be shown: its pieces in them, as many as it needs (see :meth:`Branches.reshown`).
    ``before``: the position shown before the press, where it showed another (see :meth:`Branches.put_back`)."""

    status: BranchStatus
    text: str = ""
    position: int = 1
    count: int = 1
    parts: tuple[int, ...] = ()
    before: int | None = None


class Branches:
    def __init__(
        self,
        database: Database,
        intake: Intake,
        store: TurnStore,
        responder: Responder,
        holds: Holds,
        turns: Turns,
        *,
        clock: Callable[[], datetime],
        expiry: timedelta = timedelta(hours=24),
    ) -> None:
        self.database = database
        self.intake = intake
        self.store = store
        self.responder = responder
        self.holds = holds
        self.turns = turns  # the channel held while a new answer is kept: not in the middle of a turn there
        self.clock = clock
        self.expiry = expiry
        self._locks = KeyedLocks()  # one press at a time per reply
        self._regenerating: set[int] = set()  # the replies (their button's message) another answer is written for

    async def check(self, shown_in: int, requester: int) -> BranchOutcome:
        """Whether ``requester`` may press the buttons on ``shown_in`` now (``shown``), else why not: ``answering``
        while another answer is written for the reply (Discord wants a press answered at once, and the model may
        take longer)."""
        refusal = (await self._pressable(shown_in, requester))[1]
        if refusal.status == "shown" and shown_in in self._regenerating:
            return BranchOutcome("answering")
        return refusal

    async def regenerate(
        self, shown_in: int, requester: int, target: ReplyTarget, *, parent_channel_id: int | None = None
    ) -> BranchOutcome:
        """🔄 on the Discord message ``shown_in`` by the Discord user ``requester``: a new answer, streamed to
        ``target``'s preview, then shown and kept as the turn's latest alternative. ``parent_channel_id``: the
        channel the reply's thread is in, if it is in one (its persona answers there, as it did the first time).
        While another answer is written for the reply already, none more is (``answering``)."""
        if shown_in in self._regenerating:
            return BranchOutcome("answering")
        async with self._written_for(shown_in), self._locks.hold(shown_in):
            reply, refusal = await self._pressable(shown_in, requester)
            if reply is None:
                return refusal
            async with self.database.reading() as session:
                repository = AlternativeRepository(session)
                answered = await repository.answered_by(reply)
                shown, count = positions(await repository.of(reply.message_id))
            if not answered:  # the messages it answered are gone (erased)
                return BranchOutcome("unknown")
            # Each message as it was answered: its own text and images (the last one is the turn's incoming).
            asked = [incoming_of(row, parent_channel_id=parent_channel_id) for row in answered]
            batch = [stored_of(row, one) for row, one in zip(answered, asked, strict=True)]
            incoming = asked[-1]
            decision = await self.intake.place_of(incoming)
            if stopped := await self.holds.stopped(batch[-1].guild_id, decision.settings):
                return BranchOutcome(stopped)
            query = self.responder.memory.query("\n".join(turn.text for turn in batch), place=incoming.memory_place)
            try:
                async with target.typing():
                    completion, _ = await self.responder.compose(
                        incoming,
                        batch,
                        decision.persona,
                        decision.settings,
                        target,
                        query=query,
                        was_away=reply.was_away,  # a catch-up's reply: the messages still came while Hearth was away
                        leave_out=[reply.message_id],
                    )
            except LLMUnavailable as exc:
                log.error("could not regenerate reply %s: %s", reply.message_id, exc)
                return BranchOutcome("failed", reply.content, shown, count, reply.parts)
            finally:
                query.close()
            self.holds.spent(batch[-1].guild_id, (completion.prompt_tokens or 0) + (completion.completion_tokens or 0))
            # A turn in the channel reads the history before it asks the model and stores its reply after: the new
            # answer is kept between two turns, and only while no reply has come after this one meanwhile.
            async with self.turns.channel(incoming.place.channel_id):
                if not await self._still_latest(reply):
                    log.info("not keeping another answer to reply %s: the conversation went on", reply.message_id)
                    return BranchOutcome("overtaken", reply.content, shown, count, reply.parts)
                try:
                    return replace(await self._keep(reply, completion), before=shown)
                except DATABASE_FAULTS as exc:  # nothing of it kept: the answer before stays the one shown
                    log.warning("could not keep another answer to reply %s: %s", reply.message_id, exc)
                    return BranchOutcome("failed", reply.content, shown, count, reply.parts)

    async def step(self, shown_in: int, requester: int, by: int, *, channel_id: int) -> BranchOutcome:
        """◀ (``by`` -1) or ▶ (+1): show the reply's previous or next alternative (no further than the ends).
        ``channel_id``: the channel the reply is in; while a turn there is being answered (from the answer shown),
        the answer shown stays (``writing``); while another answer is written for the reply, too (``answering``):
        Discord wants a press answered at once, and the model may take longer."""
        if shown_in in self._regenerating:
            refusal = await self.check(shown_in, requester)
            return refusal if refusal.status != "shown" else BranchOutcome("answering")
        return await self._step(shown_in, requester, by, channel_id, wait=False)

    async def _step(self, shown_in: int, requester: int, by: int, channel_id: int, *, wait: bool) -> BranchOutcome:
        async with self._locks.hold(shown_in):
            reply, refusal = await self._pressable(shown_in, requester)
            if reply is None:
                return refusal
            if not wait and self.turns.busy(channel_id):  # no waiting for it: Discord wants an answer at once
                return BranchOutcome("writing", reply.content, parts=reply.parts)
            async with self.turns.channel(channel_id):  # a turn reads the history after, or stored its reply before
                if not await self._still_latest(reply):
                    return BranchOutcome("moved_on")
                return await self._moved(reply, by)

    async def _moved(self, reply: SentReply, by: int) -> BranchOutcome:
        async with self.database.session() as session:
            repository = AlternativeRepository(session)
            alternatives = await repository.of(reply.message_id)
            shown, count = positions(alternatives)
            wanted = min(max(shown + by, 1), count)
            if wanted == shown:
                return BranchOutcome("shown", reply.content, shown, count, reply.parts)
            text = await repository.show(reply.message_id, wanted, at=self.clock())
            await MemoryRepository(session).rewrite_message_memory(reply.message_id, clean_text(text))
        self.store.rewritten(reply.conversation_id, reply.message_id, clean_text(text))
        return BranchOutcome("shown", text, wanted, count, reply.parts, before=shown)

    async def put_back(
        self, shown_in: int, requester: int, outcome: BranchOutcome, *, channel_id: int
    ) -> BranchOutcome:
        """Discord would not show ``outcome``, what a press of ``requester`` on ``shown_in`` in ``channel_id`` chose (a
        permission taken away meanwhile): the answer shown before the press is the one shown, and the one the
        conversation goes on from, again (once a turn being answered there is over); a new answer stays kept among
        the others. Returns it, to be shown again where the other began to be."""
        before = outcome.position if outcome.before is None else outcome.before
        return await self._step(shown_in, requester, before - outcome.position, channel_id, wait=True)

    async def shown(self, shown_in: int, requester: int, *, channel_id: int) -> BranchOutcome:
        """The answer the reply on ``shown_in`` in ``channel_id`` shows as stored, the one the conversation goes on
        from (once a turn being answered there is over): to be shown again where another answer to it, cut short by
        a stop, had begun to stream; else why it cannot be (the reply pressed by another, moved on from)."""
        return await self._step(shown_in, requester, 0, channel_id, wait=True)

    async def reshown(self, shown_in: int, parts: Sequence[int]) -> None:
        """The reply whose buttons were on the Discord message ``shown_in`` is now shown in ``parts``, in order
        (an answer needing more messages than the one before, or fewer): its buttons, on the last, work there."""
        async with self.database.session() as session:
            repository = AlternativeRepository(session)
            reply = await repository.reply_shown_in(shown_in)
            if reply is not None and reply.parts != tuple(parts):
                await repository.reshown(reply.message_id, parts)

    @contextlib.asynccontextmanager
    async def _written_for(self, shown_in: int) -> AsyncIterator[None]:
        """While another answer is written for the reply whose buttons are on ``shown_in``."""
        self._regenerating.add(shown_in)
        try:
            yield
        finally:
            self._regenerating.discard(shown_in)

    async def _pressable(self, shown_in: int, requester: int) -> tuple[SentReply | None, BranchOutcome]:
        async with self.database.reading() as session:
            reply = await AlternativeRepository(session).reply_shown_in(shown_in)
        if reply is None:
            return None, BranchOutcome("unknown")
        if reply.answered_discord_id != requester:
            return None, BranchOutcome("not_yours")
        if self.clock() - reply.created_at > self.expiry:
            return None, BranchOutcome("expired")
        if not reply.latest:
            return None, BranchOutcome("moved_on")
        return reply, BranchOutcome("shown", reply.content, parts=reply.parts)

    async def _still_latest(self, reply: SentReply) -> bool:
        """Whether ``reply`` is still shown where it was, with no reply after it in its conversation."""
        async with self.database.reading() as session:
            now = await AlternativeRepository(session).reply_shown_in(reply.parts[-1])
        return now is not None and now.message_id == reply.message_id and now.latest

    async def _keep(self, reply: SentReply, completion: Completion) -> BranchOutcome:
        """Store ``completion`` as the reply's newest alternative and show it (the first answer is kept as the
        first alternative the first time)."""
        at = self.clock()
        async with self.database.session() as session:
            repository = AlternativeRepository(session)
            alternatives = await repository.of(reply.message_id)
            if not alternatives:
                await repository.add(
                    reply.message_id,
                    1,
                    reply.content,
                    model=reply.model,
                    prompt_tokens=reply.prompt_tokens,
                    completion_tokens=reply.completion_tokens,
                )
            position = max((a.position for a in alternatives), default=1) + 1
            await repository.add(
                reply.message_id,
                position,
                completion.text,
                model=completion.model,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
            )
            text = await repository.show(reply.message_id, position, at=at)
            await MemoryRepository(session).rewrite_message_memory(reply.message_id, clean_text(text))
        self.store.rewritten(reply.conversation_id, reply.message_id, clean_text(text))
        return BranchOutcome("shown", text, position, position, reply.parts)
