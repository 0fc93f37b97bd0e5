"""The conversation pipeline: a message in, an in-character reply out.

1. Decide whether to answer (pure rules on the message and the guild's settings).
2. Store the user's message first, in one short transaction, so nothing said is lost whatever fails next.
3. Answer in turns: one turn at a time per channel; messages a user sends while a reply to them is being
   written are answered together by their next turn.
4. Recall long-term memories in this place's scope (the query's embedding is started as the message
   arrives, so it overlaps storing it), build the prompt (pure), call the model once, streaming; no
   transaction is open while it writes.
5. Deliver the reply in messages of at most 2000 characters, then store it with its token usage.
Every stored turn's memory is written in the transaction that stores it, without a vector (the word search
finds it at once); the embedding worker fills the vector in the background (bot/services/embedding_worker.py).

Limits hold before the model is called, never before the message is stored: a user answered less than their
cooldown ago waits out the rest (what they send meanwhile is answered in the same turn); a guild past its daily
token quota, or a bot the owner put to rest, says so once per channel (per user, when resting) and stays quiet.

The database may be restarting or dropping connections at any moment. Storing a message retries with backoff
for up to ``store_budget_s`` (longer than a restart takes); everything else a reply reads degrades: the guild's
settings and persona fall back to what was last read (or the defaults), the quota to "not spent", history and
memories to none. A message that truly cannot be stored gets a reply saying so; nothing raises out of
:meth:`ConversationService.handle` for a database fault.
"""

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.engine import DATABASE_FAULTS, Database
from bot.db.repositories.conversations import AwaitingMessage, ConversationRepository, HistoryRow
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.db.types import utcnow
from bot.domain import guild_settings
from bot.domain.budget import TokenCounter, estimate_tokens
from bot.domain.chunking import DISCORD_LIMIT, split_message
from bot.domain.memory_text import context_line
from bot.domain.prompt import Budget, PersonaCard, PromptRequest, Turn, build_prompt
from bot.domain.recall import RecallScope
from bot.domain.retry import Backoff, fits_budget
from bot.domain.text import clean_text
from bot.domain.triggers import ChatRules, MessageSignals, should_reply
from bot.llm.chat import ChatModel, ChatOptions, Completion, LLMUnavailable
from bot.llm.embeddings import Vectors
from bot.services.activity import ReplyActivity
from bot.services.companion import CompanionContext
from bot.services.directory import Directory, GuildView, Identity
from bot.services.embedding_worker import EmbeddingWorker
from bot.services.incoming import Author, IncomingMessage, Place, ReplyTarget, TurnOutcome
from bot.services.learning import Learner
from bot.services.limits import Cooldowns, TokenQuota
from bot.services.locks import KeyedLocks
from bot.services.memory import MemorySection, MemoryService
from bot.services.personas import DEFAULT_PERSONA, PersonaService, PersonaView
from bot.services.recent import RecentTurns
from bot.services.tasks import discard

log = logging.getLogger(__name__)

MEMORY_TROUBLE = (
    "I can't reach my memory right now, so I couldn't keep what you just said, and I'd rather not answer"
    " half-remembering. Could you tell me again in a little while?"
)
RESTING = (
    "I'm resting for a little while: my keeper is doing some maintenance. I've kept your message, and I'll be"
    " back soon."
)
OVER_QUOTA = (
    "I've talked so much today that I've reached this server's daily limit. I've kept what you said, and I'll be"
    " back tomorrow (00:00 UTC)."
)
# Who speaks when not even the persona can be read (the database down since start-up).
_DEFAULT_VIEW = PersonaView(
    id=0,
    name=DEFAULT_PERSONA["name"],
    card=PersonaCard(
        name=DEFAULT_PERSONA["name"],
        personality=DEFAULT_PERSONA["personality_prompt"],
        backstory=DEFAULT_PERSONA["backstory"],
        example_dialogue=DEFAULT_PERSONA["example_dialogue"],
    ),
    config=dict(DEFAULT_PERSONA["config"]),
    greeting=DEFAULT_PERSONA["greeting"],
)


@dataclass(frozen=True, slots=True)
class ConversationConfig:
    model: str
    temperature: float = 0.8
    max_tokens: int = 600
    context_tokens: int = 8192
    extra_headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    idle: timedelta = timedelta(minutes=60)
    history_turns: int = 40
    edit_interval_s: float = 1.0
    cooldown_s: float = 2.0  # per user, between the starts of two replies; a guild may set its own
    store_budget_s: float = 30.0  # how long storing a message keeps retrying a failing database (a restart)


@dataclass(frozen=True, slots=True)
class StoredTurn:
    """A user message as stored, waiting for (or part of) a turn."""

    message_row_id: int
    conversation_id: int
    user_id: int
    guild_id: int | None
    speaker: str
    text: str


def _nothing() -> None:
    pass


def _incoming_of(row: AwaitingMessage) -> IncomingMessage:
    """A stored message as the front end would have handed it in (the channel's name is not stored)."""
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
            text=row.content, author_id=row.author_discord_id, channel_id=row.channel_id, is_dm=place.is_dm
        ),
        message_id=row.discord_message_id,
    )


def _stored_of(row: AwaitingMessage, incoming: IncomingMessage) -> StoredTurn:
    return StoredTurn(
        message_row_id=row.message_id,
        conversation_id=row.conversation_id,
        user_id=row.user_id,
        guild_id=row.guild_id,
        speaker=incoming.author.shown_name,
        text=row.content,
    )


def _storable(incoming: IncomingMessage) -> IncomingMessage:
    """The message with its text and every name cleaned as storage requires (see bot/domain/text.py): a NUL or
    a lone surrogate anywhere would fail the insert, the embedder and the model's request alike."""
    author, place = incoming.author, incoming.place

    def clean(value: str | None) -> str | None:
        return None if value is None else clean_text(value)

    return replace(
        incoming,
        text=clean_text(incoming.text),
        author=replace(
            author,
            username=clean_text(author.username),
            display_name=clean(author.display_name),
            nickname=clean(author.nickname),
            roles=tuple(clean_text(role) for role in author.roles),
        ),
        place=replace(place, channel_name=clean(place.channel_name), guild_name=clean(place.guild_name)),
        signals=replace(incoming.signals, text=clean_text(incoming.signals.text)),
    )


class _PreviewThrottle:
    """Shows the streaming text at once, then at most once per ``interval_s``."""

    def __init__(self, target: ReplyTarget, interval_s: float) -> None:
        self.target = target
        self.interval_s = interval_s
        self.last = float("-inf")

    async def __call__(self, text: str) -> None:
        now = time.monotonic()
        if not text.strip() or now - self.last < self.interval_s:
            return
        self.last = now
        await self.target.preview(text if len(text) <= DISCORD_LIMIT else text[: DISCORD_LIMIT - 1] + "…")


class ConversationService:
    def __init__(
        self,
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
        activity: ReplyActivity | None = None,
        cooldowns: Cooldowns | None = None,
        quota: TokenQuota | None = None,
        clock: Callable[[], datetime] = utcnow,
        roll: Callable[[], float] = random.random,
        token_counter: Callable[[str], TokenCounter] = lambda model: estimate_tokens,
    ) -> None:
        self.database = database
        self.token_counter = token_counter  # model name → how its prompt is counted (bot/llm/tokens.py)
        self.cooldowns = cooldowns or Cooldowns()
        self.quota = quota
        self.roll = roll
        # The owner's maintenance switch: messages are stored, and answered only with RESTING.
        self.resting = False
        self._told: set[tuple[object, ...]] = set()
        self.memory = memory
        # Turns are remembered (a memory row with each stored message) when there is a worker to embed them.
        self.worker = worker
        self.companion = companion
        self.learner = learner
        self.activity = activity or ReplyActivity()
        self.chat = chat
        self.directory = directory
        self.personas = personas
        self.config = config
        self.clock = clock
        self._store_locks = KeyedLocks()
        self._turn_locks = KeyedLocks()
        # channel → (open conversation, its DM user or None, last message time): saves a lookup per message.
        # The database stays the authority: a stale entry only costs the lookup it was meant to save.
        self._open: dict[int, tuple[int, int | None, datetime]] = {}
        self.recent = RecentTurns(config.history_turns)
        self._pending: defaultdict[tuple[int, int], list[StoredTurn]] = defaultdict(list)
        self._waiting: set[tuple[int, int]] = set()
        # The last guild settings and persona read for each place (Discord guild id, None: DMs): what a reply
        # uses while the database cannot be read. Unlike the caches behind them, never dropped after a fault.
        self._last_guild: dict[int, GuildView] = {}
        self._last_persona: dict[int | None, PersonaView] = {}

    async def handle(self, incoming: IncomingMessage, target: ReplyTarget) -> TurnOutcome:
        started = time.perf_counter()
        incoming = _storable(incoming)
        guild = await self._guild_of(incoming)
        persona = await self._persona_of(incoming, guild)
        if not should_reply(incoming.signals, guild.rules if guild else ChatRules(), persona.name, roll=self.roll()):
            return TurnOutcome("ignored")
        settings = guild.typed if guild else guild_settings.GuildSettings()

        # Until the model is called, background work holds back (see bot/services/activity.py).
        preparing = self.activity.begin()
        # Embedding the query takes longest of what comes before the model call: start it now, alongside storing.
        query_vector = self.memory.start_query(incoming.text) if self.memory else None
        try:
            try:
                stored = await self._store_incoming(incoming)
            except DATABASE_FAULTS:
                log.exception(
                    "could not store message %s in channel %s; not answering",
                    incoming.message_id,
                    incoming.place.channel_id,
                )
                sent = await self._send_safely(target, [MEMORY_TROUBLE], incoming)
                return TurnOutcome("apologised", reply=MEMORY_TROUBLE, sent_ids=sent)

            held = await self._held_back(incoming, stored, settings, target)
            if held is not None:
                await self._settle([stored])
                return held
            key = (incoming.place.channel_id, incoming.author.discord_id)
            self._pending[key].append(stored)
            if key in self._waiting:
                return TurnOutcome("queued")  # the turn already waiting for this user answers it too
            self._waiting.add(key)
            cooldown = self.config.cooldown_s if settings.cooldown_s is None else settings.cooldown_s
            wait = self.cooldowns.remaining(incoming.author.discord_id, cooldown)
            if wait:
                await asyncio.sleep(wait)  # what the user sends meanwhile joins this turn
            self.cooldowns.mark(incoming.author.discord_id)
            async with self._turn_locks.hold(incoming.place.channel_id):
                self._waiting.discard(key)
                batch = self._pending.pop(key)
                # Answering several messages at once: recall by all of them, not by the first one's vector.
                vector = query_vector if len(batch) == 1 else None
                try:
                    return await self._answer(incoming, batch, persona, settings, target, started, vector, preparing)
                except DATABASE_FAULTS:  # stored, so not lost; whatever was not guarded must not cost the answer
                    log.exception("database fault while answering in channel %s", incoming.place.channel_id)
                    await self._settle(batch)
                    sent = await self._send_safely(target, [persona.apology], incoming)
                    return TurnOutcome("apologised", reply=persona.apology, sent_ids=sent, answered_messages=len(batch))
        finally:
            preparing()
            if query_vector is not None:
                discard(query_vector)

    async def keep(self, incoming: IncomingMessage) -> TurnOutcome:
        """Store a message Hearth would answer, without answering it now: the bot is stopping, and a turn begun
        now could not finish before Discord closes. It stays awaiting its reply, so the next start's catch-up
        answers it (Discord does not send a stopped bot what it missed)."""
        incoming = _storable(incoming)
        guild = await self._guild_of(incoming)
        persona = await self._persona_of(incoming, guild)
        if not should_reply(incoming.signals, guild.rules if guild else ChatRules(), persona.name, roll=self.roll()):
            return TurnOutcome("ignored")
        try:
            await self._store_incoming(incoming)
        except DATABASE_FAULTS:
            log.exception("could not keep message %s while stopping", incoming.message_id)
            return TurnOutcome("lost")
        return TurnOutcome("kept")

    async def _guild_of(self, incoming: IncomingMessage) -> GuildView | None:
        """The guild's settings, or what was last read of them while the database cannot be read."""
        place = incoming.place
        if place.guild_id is None:
            return None
        try:
            view = await self.directory.guild(place)
        except DATABASE_FAULTS as exc:
            log.warning("guild %s settings unreadable (%s); using the last ones read", place.guild_id, exc)
            return self._last_guild.get(place.guild_id)
        if view is not None:
            self._last_guild[place.guild_id] = view
        return view

    async def _persona_of(self, incoming: IncomingMessage, guild: GuildView | None) -> PersonaView:
        """The persona that speaks here, or the last one read here (else the default) while the database is down."""
        key = incoming.place.guild_id
        last = self._last_persona.get(key)
        if key is not None and guild is None:  # the guild itself could not be read: nor can its persona
            return last or _DEFAULT_VIEW
        try:
            persona = await self.personas.for_guild(guild.guild_id if guild else None)
        except DATABASE_FAULTS as exc:
            log.warning("persona for guild %s unreadable (%s); using the last one read", key, exc)
            return last or _DEFAULT_VIEW
        self._last_persona[key] = persona
        return persona

    def rest(self, resting: bool) -> None:
        """The owner's maintenance switch; each channel and user is told again after a new switch."""
        self.resting = resting
        self._told = {key for key in self._told if key[0] != "resting"}

    async def _held_back(
        self, incoming: IncomingMessage, stored: StoredTurn, settings: guild_settings.GuildSettings, target: ReplyTarget
    ) -> TurnOutcome | None:
        """RESTING or OVER_QUOTA (said once, then silence) when the model must not be called; else None."""
        key: tuple[object, ...]
        if self.resting:
            notice, key = RESTING, ("resting", incoming.place.channel_id, incoming.author.discord_id)
        elif stored.guild_id is not None and await self._over_quota(stored.guild_id, settings):
            notice, key = OVER_QUOTA, ("quota", self.clock().date(), incoming.place.channel_id)
        else:
            return None
        if key in self._told:
            return TurnOutcome("held")
        if key[0] == "quota":  # yesterday's notices are done with
            self._told = {told for told in self._told if told[0] != "quota" or told[1] == key[1]}
        self._told.add(key)
        sent = await self._send_safely(target, [notice], incoming)
        return TurnOutcome("held", reply=notice, sent_ids=sent)

    async def _over_quota(self, guild_id: int, settings: guild_settings.GuildSettings) -> bool:
        """Whether the guild spent its daily tokens; when that cannot be counted, it did not."""
        if self.quota is None:
            return False
        try:
            return await self.quota.exhausted(guild_id, settings.daily_token_quota)
        except DATABASE_FAULTS as exc:
            log.warning("could not count guild %s's tokens (%s); answering", guild_id, exc)
            return False

    def forget_cached(self) -> None:
        """Drop what this service remembers of stored rows: call it after deleting users or messages."""
        self.directory.forget()
        self._open.clear()
        self.recent.forget()

    async def _store_incoming(self, incoming: IncomingMessage) -> StoredTurn:
        """Store the message (and who and where), retrying with backoff for up to ``store_budget_s`` while the
        database fails (a restart takes seconds; killed connections fail one statement each)."""
        backoff = Backoff(base_s=0.1, cap_s=2.0)
        began = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._store_locks.hold(incoming.place.channel_id):
                    return await self._store_once(incoming, retry=attempt > 1)
            except DATABASE_FAULTS as exc:
                wait = backoff.delay(attempt)
                # The database refusing the row: once with fresh lookups (a cached row deleted elsewhere), no more.
                refused = isinstance(exc, IntegrityError | DataError) and attempt > 1
                if refused or not fits_budget(time.monotonic() - began, wait, self.config.store_budget_s):
                    raise
                log.warning("storing message %s failed (%s); retrying in %.1f s", incoming.message_id, exc, wait)
                # A cached row may be what failed (deleted elsewhere): look everything up afresh.
                self.forget_cached()
                await asyncio.sleep(wait)

    async def _store_once(self, incoming: IncomingMessage, *, retry: bool = False) -> StoredTurn:
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
                conversation_id, message_id = await self._add_incoming(repo, incoming, identity, dm_user)
            stored = StoredTurn(
                message_row_id=message_id,
                conversation_id=conversation_id,
                user_id=identity.user_id,
                guild_id=identity.guild_id,
                speaker=speaker,
                text=text,
            )
            if found is None:
                await self._remember(session, stored, place, message_id, text, speaker, at)
        self._open[place.channel_id] = (conversation_id, dm_user, at)
        self.recent.add(conversation_id, HistoryRow(message_id, "user", text, speaker, at))
        if self.worker is not None:
            self.worker.wake()
        if self.learner is not None:
            self.learner.observe(conversation_id)
        return stored

    async def _add_incoming(
        self, repo: ConversationRepository, incoming: IncomingMessage, identity: Identity, dm_user: int | None
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
            awaiting_reply=not self.resting,  # resting: said so, and not answered after a restart either
        )
        return conversation_id, message_id

    async def _remember(
        self,
        session: AsyncSession,
        turn: StoredTurn,
        place: Place,
        message_id: int,
        text: str,
        speaker: str | None,
        at: datetime,
    ) -> None:
        """Write a stored turn's memory in the transaction that stores it, without a vector (the embedding worker
        adds it). Hearth's own turns have no speaker ("you" in a prompt). Its context, the turn before it, comes
        from the recent turns this process knows of (none for a conversation's first turn after a start)."""
        if self.worker is None or not text.strip():
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
        await MemoryRepository(session).add_many([memory], None, None)

    async def _open_conversation(
        self, repo: ConversationRepository, channel_id: int, guild_id: int | None, dm_user: int | None, at: datetime
    ) -> int:
        """The channel's conversation if it is still going (no idle gap), else a new one."""
        active_since = at - self.config.idle
        cached = self._open.get(channel_id)
        if cached is not None and cached[1] == dm_user and cached[2] >= active_since:
            return cached[0]
        conversation = await repo.find_open(channel_id=channel_id, user_id=dm_user, active_since=active_since)
        if conversation is None:
            conversation = await repo.open(channel_id=channel_id, guild_id=guild_id, user_id=dm_user, at=at)
        return conversation.id

    async def _answer(
        self,
        incoming: IncomingMessage,
        batch: list[StoredTurn],
        persona: PersonaView,
        settings: guild_settings.GuildSettings,
        target: ReplyTarget,
        started: float,
        query_vector: "asyncio.Future[Vectors] | None",
        prepared: Callable[[], None],
        *,
        was_away: bool = False,
    ) -> TurnOutcome:
        last = batch[-1]
        exclude_ids = [turn.message_row_id for turn in batch]

        async def load(limit: int) -> list[HistoryRow]:
            async with self.database.session() as session:
                return await ConversationRepository(session).history(
                    last.conversation_id, up_to_id=last.message_row_id, exclude_ids=exclude_ids, limit=limit
                )

        # Everything said in the conversation up to now (replies to others included), but this batch itself.
        try:
            history = await self.recent.history(
                last.conversation_id, up_to_id=last.message_row_id, exclude_ids=exclude_ids, load=load
            )
        except DATABASE_FAULTS as exc:  # a fault costs the history, never the reply
            log.warning("could not read conversation %s's history (%s); answering without", last.conversation_id, exc)
            history = []
        place = incoming.place
        options = self._options(persona, settings)
        budget = Budget(
            context_tokens=self.config.context_tokens,
            reply_tokens=options.max_tokens,
            count=self.token_counter(options.model),
        )
        # Recall waits on the query's embedding, what Hearth knows does not: it runs alongside (see tasks.py).
        knowing = asyncio.create_task(self._companion_sections(batch, persona, budget, query_vector))
        try:
            in_history = [row.message_id for row in history] + exclude_ids
            recalled = await self._recall(batch, query_vector, in_history, budget)
            known = await knowing
        finally:
            discard(knowing)
        request = PromptRequest(
            persona=persona.card,
            speaker=incoming.author.shown_name,
            place=(
                f"a direct message with {incoming.author.shown_name}"
                if place.is_dm
                else f"#{place.channel_name or 'a channel'} in {place.guild_name or 'a server'}"
            ),
            current=[Turn("user", turn.text, turn.speaker) for turn in batch],
            history=[
                Turn("assistant" if row.role == "assistant" else "user", row.content, row.speaker) for row in history
            ],
            sections={**known, "memories": recalled.text},
            is_group=not place.is_dm,
            language=settings.language,
            now_text=self.clock().strftime("%A %d %B %Y, %H:%M UTC"),
            was_away=was_away,
        )
        messages = build_prompt(request, budget)
        prepared()

        try:
            async with target.typing():
                completion = await self.chat.generate(
                    messages, options, on_text=_PreviewThrottle(target, self.config.edit_interval_s)
                )
        except LLMUnavailable as exc:
            log.error("no reply for channel %s user %s: %s", place.channel_id, incoming.author.discord_id, exc)
            await self._settle(batch)
            sent = await self._send_safely(target, [persona.apology], incoming)
            return TurnOutcome("apologised", reply=persona.apology, sent_ids=sent, answered_messages=len(batch))

        sent = await self._send_safely(target, split_message(completion.text), incoming)
        model_ms = completion.seconds * 1000
        # Until the reply is out: storing it comes after, and holds up the channel's next turn, not this one.
        own_ms = (time.perf_counter() - started) * 1000 - model_ms
        if self.quota is not None and last.guild_id is not None:
            self.quota.spent(last.guild_id, (completion.prompt_tokens or 0) + (completion.completion_tokens or 0))
        await self._store_reply(
            incoming,
            batch,
            completion.text,
            completion,
            latency_ms=int(model_ms),
            recalled=recalled.memory_ids,
        )
        return TurnOutcome(
            "replied",
            reply=completion.text,
            sent_ids=sent,
            answered_messages=len(batch),
            own_ms=own_ms,
            model_ms=model_ms,
        )

    async def _recall(
        self,
        batch: list[StoredTurn],
        query_vector: "asyncio.Future[Vectors] | None",
        in_history: list[int],
        budget: Budget,
    ) -> MemorySection:
        """Long-term memories for the prompt; a fault here costs the section, never the reply."""
        tokens = budget.section_budget("memories")
        if self.memory is None or tokens <= 0:
            return MemorySection("", [])
        last = batch[-1]
        try:
            return await self.memory.prompt_section(
                "\n".join(turn.text for turn in batch),
                RecallScope(user_id=last.user_id, guild_id=last.guild_id),
                now=self.clock(),
                tokens=tokens,
                exclude_message_ids=in_history,
                vector=query_vector,
                count=budget.count,
            )
        except Exception:  # the embedder, the database, anything: answer without memories rather than not at all
            log.exception("could not recall memories for conversation %s; answering without", last.conversation_id)
            return MemorySection("", [])

    async def _companion_sections(
        self,
        batch: list[StoredTurn],
        persona: PersonaView,
        budget: Budget,
        query_vector: "asyncio.Future[Vectors] | None",
    ) -> dict[str, str]:
        """Facts, relationship, mood, opinions and style for the prompt; a fault costs them, never the reply."""
        if self.companion is None:
            return {}
        last = batch[-1]
        try:
            return await self.companion.sections(
                user_id=last.user_id,
                guild_id=last.guild_id,
                text="\n".join(turn.text for turn in batch),
                persona_config=persona.config,
                budgets={name: budget.section_budget(name) for name in ("facts",)},
                query_vector=query_vector if len(batch) == 1 else None,
                count=budget.count,
            )
        except Exception:
            log.exception(
                "could not gather what Hearth knows for conversation %s; answering without", last.conversation_id
            )
            return {}

    def _options(self, persona: PersonaView, settings: guild_settings.GuildSettings) -> ChatOptions:
        """Model settings: the guild's choice, else the persona's, else the bot's."""
        config = self.config

        def pick(chosen: Any, key: str, default: Any) -> Any:
            if chosen is not None:
                return chosen
            return persona.config[key] if persona.config.get(key) is not None else default

        return ChatOptions(
            model=str(pick(settings.model, "model", config.model)),
            temperature=float(pick(settings.temperature, "temperature", config.temperature)),
            max_tokens=int(pick(None, "max_tokens", config.max_tokens)),
            extra_headers=config.extra_headers,
            extra_body=config.extra_body,
        )

    async def _store_reply(
        self,
        incoming: IncomingMessage,
        batch: list[StoredTurn],
        text: str,
        completion: Completion,
        *,
        latency_ms: int,
        recalled: list[int],
    ) -> None:
        """Store Hearth's reply (and mark the memories it drew on as recalled, and the messages it answers as
        answered); a failure here is logged, never shown: the reply was already delivered."""
        at, last = self.clock(), batch[-1]
        try:
            async with self.database.session() as session:
                await MemoryRepository(session).touch(recalled, now=at)
                conversations = ConversationRepository(session)
                await conversations.settle([turn.message_row_id for turn in batch])
                message_id = await conversations.add_message(
                    conversation_id=last.conversation_id,
                    user_id=last.user_id,
                    role="assistant",
                    content=text,
                    at=at,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    model=completion.model,
                    latency_ms=latency_ms,
                )
                cleaned = clean_text(text)
                await self._remember(session, last, incoming.place, message_id, cleaned, None, at)
            self.recent.add(last.conversation_id, HistoryRow(message_id, "assistant", cleaned, None, at))
            if self.worker is not None:
                self.worker.wake()
        except DATABASE_FAULTS:
            log.exception(
                "reply delivered but not stored (guild %s, channel %s, message %s, conversation %s)",
                incoming.place.guild_id,
                incoming.place.channel_id,
                incoming.message_id,
                last.conversation_id,
            )

    async def _settle(self, batch: list[StoredTurn]) -> None:
        """The batch's turn is over without a stored reply (held back, apologised): not for catching up later."""
        try:
            async with self.database.session() as session:
                await ConversationRepository(session).settle([turn.message_row_id for turn in batch])
        except DATABASE_FAULTS as exc:
            log.warning("could not mark messages %s as handled (%s)", [t.message_row_id for t in batch], exc)

    async def catch_up(
        self,
        within: timedelta,
        target_for: Callable[[IncomingMessage], Awaitable[ReplyTarget | None]],
        *,
        limit: int = 500,
    ) -> int:
        """Answer the messages stored in the last ``within`` that never got their reply (the bot stopped before
        it), oldest first, telling the model it was away; returns how many turns were answered.

        ``target_for`` gives where to answer a message, or None when this process cannot (another shard's
        channel): those are left for the process that can. Each message is claimed in the database before it is
        answered, so it is answered once, across restarts and processes (a crash mid-answer loses that answer
        rather than repeating it)."""
        if within <= timedelta(0) or self.resting:
            return 0
        async with self.database.session() as session:
            waiting = await ConversationRepository(session).awaiting_reply(since=self.clock() - within, limit=limit)
        reachable: list[tuple[AwaitingMessage, IncomingMessage, ReplyTarget]] = []
        for row in waiting:
            incoming = _incoming_of(row)
            target = await target_for(incoming)
            if target is not None:
                reachable.append((row, incoming, target))
        async with self.database.session() as session:
            claimed = set(await ConversationRepository(session).settle([row.message_id for row, _, _ in reachable]))
        # One turn per person and channel, as live messages sent together are answered together.
        turns: dict[tuple[int, int], list[tuple[AwaitingMessage, IncomingMessage, ReplyTarget]]] = {}
        for item in reachable:
            if item[0].message_id in claimed:
                turns.setdefault((item[0].channel_id, item[0].author_discord_id), []).append(item)
        answered = 0
        for items in turns.values():
            row, incoming, target = items[-1]
            try:
                guild = await self._guild_of(incoming)
                persona = await self._persona_of(incoming, guild)
                settings = guild.typed if guild else guild_settings.GuildSettings()
                batch = [_stored_of(item_row, item_incoming) for item_row, item_incoming, _ in items]
                async with self._turn_locks.hold(row.channel_id):
                    outcome = await self._answer(
                        incoming, batch, persona, settings, target, time.perf_counter(), None, _nothing, was_away=True
                    )
            except Exception:  # one message must not stop the others being answered
                log.exception("could not catch up on message %s in channel %s", row.message_id, row.channel_id)
                continue
            answered += outcome.status == "replied"
        if waiting:
            log.info("caught up: %d of %d waiting messages answered in %d turns", len(claimed), len(waiting), answered)
        return answered

    async def _send_safely(self, target: ReplyTarget, pieces: list[str], incoming: IncomingMessage) -> list[int]:
        try:
            return await target.send(pieces)
        except Exception:
            log.exception(
                "could not deliver a reply (guild %s, channel %s, message %s)",
                incoming.place.guild_id,
                incoming.place.channel_id,
                incoming.message_id,
            )
            return []
