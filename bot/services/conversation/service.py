"""A message's way through Hearth, stage by stage (each in a module of this package):

1. intake: clean the message and decide whether to answer it (pure rules on the message and the guild's
   settings, see bot/domain/triggers.py);
2. store: the user's message first, in one short transaction with its memory, so nothing said is lost
   whatever fails next;
3. holds: the owner's rest switch and the guild's daily quota hold back the model (said once, then silence);
4. turns: one turn at a time per channel, a user's messages sent while their turn waits joining it, and the
   user's cooldown;
5. responder: history, memories and what Hearth knows; the prompt; the model, streaming; delivery; the reply
   stored.

The query's embedding starts as the message arrives, so it overlaps storing it. Nothing raises out of
:meth:`ConversationService.handle` for a database fault: a message that truly cannot be stored gets a reply
saying so, and a fault later costs the reply at most (an apology), never the stored message.
"""

import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import datetime, timedelta

from bot.db.engine import DATABASE_FAULTS, Database
from bot.db.types import utcnow
from bot.domain.budget import TokenCounter, estimate_tokens
from bot.domain.triggers import blocked
from bot.llm.chat import ChatModel
from bot.services.activity import ReplyActivity
from bot.services.companion import CompanionContext, NoCompanion
from bot.services.conversation.branches import Branches
from bot.services.conversation.catch_up import CatchUp, never, no_thread
from bot.services.conversation.config import MEMORY_TROUBLE, ConversationConfig
from bot.services.conversation.delivery import send_notice
from bot.services.conversation.holds import Holds
from bot.services.conversation.intake import Intake, storable, withheld
from bot.services.conversation.responder import Knowledge, Recollection, Responder
from bot.services.conversation.store import TurnStore
from bot.services.conversation.turns import Turns
from bot.services.directory import Directory
from bot.services.embedding_worker import EmbeddingWorker
from bot.services.image_describer import ImageDescriber
from bot.services.incoming import IncomingMessage, Reached, ReplyTarget, TurnOutcome
from bot.services.learning import Learner
from bot.services.limits import Cooldowns, TokenQuota
from bot.services.memory import MemoryService, NoRecall
from bot.services.personas import PersonaService

log = logging.getLogger(__name__)


class ConversationService:
    """The stages put together: what the front ends call (see the module's docstring, and :func:`build`)."""

    def __init__(
        self,
        intake: Intake,
        store: TurnStore,
        holds: Holds,
        turns: Turns,
        responder: Responder,
        catching_up: CatchUp,
        branches: Branches,
        memory: Recollection,
        activity: ReplyActivity,
        config: ConversationConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.intake = intake
        self.store = store
        self.holds = holds
        self.turns = turns
        self.responder = responder
        self.catching_up = catching_up
        self.branches = branches  # 🔄 and ◀ ▶ on a reply (see branches.py)
        self.memory = memory
        self.activity = activity
        self.config = config
        self.clock = clock
        # Channels deleted (Discord said so, or refused a turn's reply there: the channel is gone), so the turns
        # waiting there end without asking the model.
        self._gone = turns.gone

    @property
    def directory(self) -> Directory:
        return self.intake.directory

    @property
    def resting(self) -> bool:
        return self.holds.resting

    def rest(self, resting: bool) -> None:
        """The owner's maintenance switch: messages are stored, and answered only with RESTING (once)."""
        self.holds.rest(resting)

    def channel_gone(self, channel_id: int) -> None:
        """The channel or thread was deleted: the turns waiting there (their cooldown, or the channel) end without
        asking the model, their messages settled; nothing could be shown there any more."""
        self._gone.add(channel_id)

    async def reset(self, channel_id: int) -> bool:
        """``/conversation reset``: the channel's next message starts a conversation with empty history (what
        Hearth remembers long-term and knows of people stays). False when no conversation was going."""
        return await self.store.reset(channel_id, at=self.clock()) > 0

    def forget_cached(self, *, people: bool = False) -> None:
        """Drop what the stages remember of stored rows: call it after deleting users or messages; ``people``: a
        person was erased, and their name is not one of their places' people any more (the names recall reads
        again then: not after every deleted or edited message, which would make the next reply in every place
        wait for that read)."""
        self.store.forget()
        if people:
            self.memory.forget_names()

    async def handle(self, incoming: IncomingMessage, target: ReplyTarget) -> TurnOutcome:
        started = time.perf_counter()
        incoming = storable(incoming)
        decision = await self.intake.decide(incoming)
        if decision is None:
            return TurnOutcome("ignored")
        incoming = withheld(incoming, decision)
        # Until the model is called, background work holds back (see bot/services/activity.py).
        preparing = self.activity.begin()
        # Embedding the query takes longest of what comes before the model call: start it now, alongside storing.
        query = self.memory.query(incoming.text, place=incoming.memory_place)
        try:
            try:
                stored = await self.store.store_incoming(incoming, awaiting_reply=not self.holds.resting)
            except DATABASE_FAULTS:
                log.exception(
                    "could not store message %s in channel %s; not answering",
                    incoming.message_id,
                    incoming.place.channel_id,
                )
                return await send_notice(target, MEMORY_TROUBLE, incoming, "apologised")
            if stored is None:  # delivered again: the first delivery is answered
                return TurnOutcome("ignored")

            held, notice = await self.holds.held(
                channel_id=incoming.place.channel_id,
                user_id=incoming.author.discord_id,
                guild_id=stored.guild_id,
                settings=decision.settings,
            )
            if held:
                await self.store.settle_quietly([stored])
                if notice is None:
                    return TurnOutcome("held")
                outcome = await send_notice(target, notice, incoming, "held")
                if outcome.status == "withdrawn":  # deleted as it came (a moderation bot): not kept either
                    await self.store.withdraw([stored], incoming.message_id)
                return outcome

            settings = decision.settings
            if decision.in_cast:
                target = target.speaking_as(decision.persona.name, decision.persona.avatar_url)
            cooldown = self.config.cooldown_s if settings.cooldown_s is None else settings.cooldown_s
            channel, user = incoming.place.channel_id, incoming.author.discord_id
            async with self.turns.turn(channel, user, stored, cooldown_s=cooldown) as batch:
                if batch is None:
                    return TurnOutcome("queued")  # the turn already waiting for this user answers it too
                # As its messages now read: one may have been edited or deleted while the turn waited (then the
                # query, made from the words as they were, is made afresh). All deleted: the model is not asked.
                if channel in self._gone:
                    log.info("not answering in channel %s: it was deleted while the turn waited", channel)
                    await self.store.settle_quietly(batch)
                    return TurnOutcome("gone", answered_messages=len(batch))
                if await self._blocked(incoming):  # meanwhile: neither answered nor kept, as had they been then
                    log.info("not answering in channel %s: it or the author was blocked as the turn waited", channel)
                    for turn in batch:
                        await self.store.withdraw([turn], turn.discord_message_id)
                    return TurnOutcome("ignored", answered_messages=len(batch))
                current = await self.store.as_stored(batch)
                if not current:
                    log.info("not answering in channel %s: its messages were deleted while they waited", channel)
                    return TurnOutcome("withdrawn", answered_messages=len(batch))
                edited = [(turn.text, turn.images) for turn in current] != [(turn.text, turn.images) for turn in batch]
                first = current[0].discord_message_id
                if first is not None and first != incoming.message_id:  # the one the reply was to answer is gone
                    target.reply_to(first)
                    incoming = replace(incoming, message_id=first)
                try:
                    outcome = await self.responder.answer(
                        incoming,
                        current,
                        decision.persona,
                        settings,
                        target,
                        started=started,
                        query=None if edited else query,
                        prepared=preparing,
                        host=decision.host,
                    )
                    if outcome.status == "gone":  # before the channel is let go: the turns waiting there end too
                        self._gone.add(channel)
                    return outcome
                except DATABASE_FAULTS:  # stored, so not lost; whatever was not guarded must not cost the answer
                    log.exception("database fault while answering in channel %s", channel)
                    await self.store.settle_quietly(batch)
                    apology = decision.persona.apology
                    outcome = await send_notice(target, apology, incoming, "apologised", answered_messages=len(batch))
                    if outcome.status == "withdrawn":
                        await self.store.withdraw(batch, incoming.message_id)
                    return outcome
        finally:
            preparing()
            query.close()

    async def _blocked(self, incoming: IncomingMessage) -> bool:
        """Whether ``incoming``'s author, or the channel it was said in, is blocked, as the guild's settings read
        now."""
        guild = (await self.intake.place_of(incoming)).guild
        if guild is None:
            return False
        return blocked(incoming.signals, guild.rules)

    def between_turns(self, channel_id: int) -> AbstractAsyncContextManager[None]:
        """The channel held between two of its turns: what is done inside comes after the turn under way has
        stored its reply, and before the next turn reads the history."""
        return self.turns.channel(channel_id)

    async def keep(self, incoming: IncomingMessage) -> TurnOutcome:
        """Store a message Hearth would answer, without answering it now: the bot is stopping, and a turn begun
        now could not finish before Discord closes. It stays awaiting its reply, so the next start's catch-up
        answers it (Discord does not send a stopped bot what it missed)."""
        incoming = storable(incoming)
        decision = await self.intake.decide(incoming)
        if decision is None:
            return TurnOutcome("ignored")
        incoming = withheld(incoming, decision)
        try:
            stored = await self.store.store_incoming(incoming, awaiting_reply=not self.holds.resting)
        except DATABASE_FAULTS:
            log.exception("could not keep message %s while stopping", incoming.message_id)
            return TurnOutcome("lost")
        return TurnOutcome("kept" if stored is not None else "ignored")

    async def as_kept(self, incoming: IncomingMessage) -> IncomingMessage:
        """``incoming`` as Hearth keeps it where it was said (an edit of a stored message: see :meth:`handle`):
        cleaned, and without the words of people blocked there."""
        incoming = storable(incoming)
        return withheld(incoming, await self.intake.place_of(incoming))

    async def catch_up(
        self,
        within: timedelta,
        target_for: Callable[[IncomingMessage], Awaitable[Reached | None]],
        *,
        thread_parent: Callable[[int], int | None] = no_thread,
        limit: int = 500,
        stopping: Callable[[], bool] = never,
    ) -> int:
        """Answer the messages stored in the last ``within`` that never got their reply (see catch_up.py)."""
        return await self.catching_up.run(
            within, target_for, thread_parent=thread_parent, limit=limit, gone=self._gone, stopping=stopping
        )


def build(
    database: Database,
    chat: ChatModel,
    directory: Directory,
    personas: PersonaService,
    config: ConversationConfig,
    *,
    memory: MemoryService | None = None,
    worker: EmbeddingWorker | None = None,
    companion: CompanionContext | None = None,
    learner: Learner | None = None,
    describer: ImageDescriber | None = None,
    activity: ReplyActivity | None = None,
    cooldowns: Cooldowns | None = None,
    quota: TokenQuota | None = None,
    clock: Callable[[], datetime] = utcnow,
    roll: Callable[[], float] = random.random,
    token_counter: Callable[[str], TokenCounter] = lambda model: estimate_tokens,
) -> ConversationService:
    """The stages wired together; a feature left out (memory, the companion, learning, quotas) is switched off.
    Turns are remembered (a memory row with each stored message) when there is a ``worker`` to embed them, and
    their images described into those memories when there is a ``describer``.
    ``token_counter``: model name → how a prompt for it is counted (bot/llm/tokens.py)."""
    store = TurnStore(
        database,
        directory,
        idle=config.idle,
        history_turns=config.history_turns,
        store_budget_s=config.store_budget_s,
        remember=worker is not None,
        remembered=worker.wake if worker is not None else _nothing,
        observed=learner.observe if learner is not None else _ignore,
        describe=describer is not None,
        images_stored=describer.wake if describer is not None else _nothing,
    )
    recollection: Recollection = memory if memory is not None else NoRecall()
    knowledge: Knowledge = companion if companion is not None else NoCompanion()
    intake = Intake(directory, personas, roll=roll)
    holds = Holds(quota, clock=clock)
    turns = Turns(cooldowns or Cooldowns())
    responder = Responder(chat, store, recollection, knowledge, holds, config, clock=clock, token_counter=token_counter)
    catching_up = CatchUp(intake, store, turns, holds, responder, clock=clock)
    branches = Branches(database, intake, store, responder, holds, turns, clock=clock)
    return ConversationService(
        intake,
        store,
        holds,
        turns,
        responder,
        catching_up,
        branches,
        recollection,
        activity or ReplyActivity(),
        config,
        clock=clock,
    )


def _nothing() -> None:
    pass


def _ignore(_: int) -> None:
    pass
