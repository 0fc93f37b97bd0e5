"""Learning about people, off the reply path: facts, relationship, mood, opinions, style and follow-ups.

The conversation service tells the learner about each stored user message (:meth:`Learner.observe`, never
waits). A conversation is learned from in batches: once it holds ``batch_messages`` new user messages, or when
it has been quiet for ``idle``. A batch costs at most one LLM call, answered as JSON (see
``bot/domain/extraction.py``); an answer that cannot be used is asked for once more (with more room when it was
cut off at its ``max_tokens``, or never began within them: a reasoning model's thinking counts in them; a reply's
``LLM_MAX_TOKENS``, or twice ``max_tokens`` when that is more), then
the batch is skipped with a log line, as is at once a batch the endpoint
refuses for what it says (a content filter), which would be refused again each time it was read. Everything a batch
teaches is written in one transaction, together with the conversation's ``learned_message_id`` marker, so a batch is
applied whole or not at all. A batch the model could
not read (it was down) or that a database fault cut off is read again once its conversation has been quiet for
``idle`` more, and after a restart :meth:`Learner.catch_up` finds the conversations whose latest messages were never
learned from.

Users who opted out are left out of the transcript the model sees and nothing is stored about them; a guild can
switch learning off (its ``learning`` setting). Who may be learned about is checked again in the transaction
that writes a batch: when someone opted out (or was erased, or the guild switched learning off) while the model
read the batch, its answer is dropped and the batch is read again without them.
"""

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from bot.db.engine import DATABASE_FAULTS, DATABASE_REFUSALS, Database
from bot.db.repositories.events import EventRepository, first_due
from bot.db.repositories.facts import FactRepository, NewFact
from bot.db.repositories.learning import LearningRepository, UnlearnedMessage
from bot.db.repositories.moods import MoodRepository
from bot.db.repositories.opinions import OpinionRepository
from bot.db.repositories.relationships import Exchange, RelationshipRepository
from bot.db.repositories.styles import StyleRepository
from bot.db.repositories.users import UserRepository
from bot.db.session import AsyncSession
from bot.db.types import utcnow
from bot.domain import mood as moods
from bot.domain import relationship as relationships
from bot.domain.extraction import (
    ExtractedFact,
    Extraction,
    ExtractionError,
    KnownFact,
    TranscriptLine,
    extraction_messages,
    own_words,
    parse_extraction,
    response_format,
    speaker_labels,
)
from bot.domain.facts import (
    ASSOCIATION_SIMILARITY,
    StoredFact,
    association_strength,
    association_type,
    decide,
    expiry_for,
    refreshed_confidence,
)
from bot.domain.opinions import after_discussion, normalize_topic
from bot.domain.place import StatePlace
from bot.domain.recurrence import start_of_day, zone_or_utc
from bot.domain.style import CommunicationStyle, signals_of, updated
from bot.llm.chat import (
    ChatModel,
    ChatOptions,
    ContentRefused,
    LLMUnavailable,
    NoRoomToAnswer,
    PromptTooLong,
    fitting_the_window,
)
from bot.llm.embeddings import Embedder, Vectors, cosine_to
from bot.llm.tokens import counter_for
from bot.services.activity import ReplyActivity
from bot.services.limits import TokenQuota
from bot.services.locks import KeyedLocks
from bot.services.personas import PersonaService, PersonaView
from bot.services.reminders import schedule_birthday

log = logging.getLogger(__name__)

# Fact types whose sameness between two members is worth remembering (see bot.domain.facts.association_type).
_ASSOCIABLE = ("hobby", "preference", "work", "location")
_WORD = re.compile(r"[^\W_]+")
# The shortest transcript a batch is read with when the model's window refuses longer ones.
MIN_TRANSCRIPT_TOKENS = 200


# The faults that end a call because the same request would end the same way (see Completion.faults), not because
# the model is down.
_SAME_AGAIN = ("refused", "no_room")


def _down(exc: LLMUnavailable) -> bool:
    """Whether a model that could not read a batch was down (errors, timeouts), so that it may answer in a while:
    not when every model tried refused the request (a bad key, no such model, a setting it does not take) or
    thought through all its room. A fallback model refusing after the one asked for was down says nothing of that
    one, which may be back soon."""
    return not exc.faults or any(fault not in _SAME_AGAIN for fault in exc.faults)


@dataclass(frozen=True, slots=True)
class LearningConfig:
    model: str
    enabled: bool = True
    batch_messages: int = 6  # new user messages in a conversation that make a batch
    idle: timedelta = timedelta(minutes=2)  # a quiet conversation is learned from with what it has
    workers: int = 2
    queue_size: int = 1000
    batch_limit: int = 40  # messages read per batch (the oldest first; the rest make the next one)
    transcript_tokens: int = 1500
    known_facts: int = 8  # per speaker, the stored facts closest to the batch shown to the model
    max_tokens: int = 800
    # The room an answer cut off at ``max_tokens``, or thought away within them, is asked for again with (a reply's,
    # ``LLM_MAX_TOKENS``): twice ``max_tokens`` when that is more.
    max_tokens_when_cut: int = 1600
    temperature: float = 0.2
    response_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    extra_body: dict[str, Any] = field(default_factory=dict)
    # (shard ids, shard count): the guilds whose conversations this process learns from (DMs: shard 0); None: all
    shards: tuple[tuple[int, ...], int] | None = None


@dataclass(frozen=True, slots=True)
class LearnOutcome:
    # withdrawn: someone in the batch may no longer be learned about; nothing was written, the marker did not move
    # taken: another process on the database learned from the batch first; nothing was written
    status: Literal["learned", "skipped", "nothing", "not_allowed", "unavailable", "withdrawn", "taken"]
    messages: int = 0
    facts_added: int = 0
    facts_refreshed: int = 0
    facts_superseded: int = 0
    llm_calls: int = 0


@dataclass(slots=True)
class _Pending:
    """What the learner knows of a conversation between batches."""

    new_user_messages: int = 0
    last_seen: float = 0.0  # monotonic time of its last observed message


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


class Learner:
    def __init__(
        self,
        database: Database,
        chat: ChatModel,
        embedder: Embedder,
        personas: PersonaService,
        config: LearningConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] | None = None,
        activity: ReplyActivity | None = None,
        quota: TokenQuota | None = None,
        yield_s: float = 1.0,
    ) -> None:
        self.database = database
        self.quota = quota
        self.chat = chat
        self.embedder = embedder
        self.personas = personas
        self.config = config
        self.clock = clock
        self.activity = activity
        self.yield_s = yield_s  # the longest a batch waits for replies being prepared (see ReplyActivity)
        self._monotonic = monotonic or (lambda: asyncio.get_running_loop().time())
        self._queue: asyncio.Queue[int | _Stop] = asyncio.Queue(config.queue_size)
        self._queued: set[int] = set()
        self._pending: dict[int, _Pending] = {}
        self._locks = KeyedLocks()
        self._workers: list[asyncio.Task[None]] = []
        self._idle_watch: asyncio.Task[None] | None = None
        self.llm_calls = 0  # chat requests made so far (retries included)
        self.batches = 0

    # -- feeding ----------------------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def observe(self, conversation_id: int) -> None:
        """A user message was stored in this conversation; learn from it with the next batch (never waits)."""
        if not self.config.enabled:
            return
        pending = self._pending.setdefault(conversation_id, _Pending())
        pending.new_user_messages += 1
        pending.last_seen = self._monotonic()
        if pending.new_user_messages >= self.config.batch_messages:
            self._enqueue(conversation_id)

    def _enqueue(self, conversation_id: int) -> None:
        self._pending.pop(conversation_id, None)
        if conversation_id in self._queued:
            return
        try:
            self._queue.put_nowait(conversation_id)
        except asyncio.QueueFull:
            log.warning("learning queue full; conversation %s is left for the next catch-up", conversation_id)
            return
        self._queued.add(conversation_id)

    def _again_when_quiet(self, conversation_id: int) -> None:
        """Learn from the conversation again once it has been quiet for ``idle`` from now (sooner if it fills a
        batch): its batch could not be read (the model down, a database fault), and waiting for someone to write
        there again, or for the next start, could be long."""
        pending = self._pending.setdefault(conversation_id, _Pending())
        pending.last_seen = self._monotonic()

    def enqueue_idle(self) -> int:
        """Queue the conversations quiet for ``idle`` with something not yet learned; returns how many."""
        cutoff = self._monotonic() - self.config.idle.total_seconds()
        idle = [conversation for conversation, p in self._pending.items() if p.last_seen <= cutoff]
        for conversation_id in idle:
            self._enqueue(conversation_id)
        return len(idle)

    async def catch_up(self, limit: int = 1000) -> int:
        """Queue the conversations holding user messages that were never learned from (after a restart): those of
        this process's shards, whose messages it hears and learns from as they come; the other processes catch up
        on theirs."""
        if not self.config.enabled:
            return 0
        async with self.database.session() as session:
            behind = await LearningRepository(session).conversations_behind(limit=limit, shards=self.config.shards)
        for conversation_id in behind:
            self._enqueue(conversation_id)
        if behind:
            log.info("catching up on learning in %d conversations", len(behind))
        return len(behind)

    # -- running ----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._workers or not self.config.enabled:
            return
        self._workers = [
            asyncio.create_task(self._work(), name=f"learner-{i}") for i in range(max(1, self.config.workers))
        ]
        self._idle_watch = asyncio.create_task(self._watch_idle(), name="learner-idle")

    async def flush(self) -> None:
        """Wait until everything queued so far is learned (tests, shutdown)."""
        await self._queue.join()

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Learn from what is pending (every conversation with new messages), then stop; what does not finish
        within ``timeout_s`` is caught up at the next start."""
        if self._idle_watch is not None:
            self._idle_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_watch
            self._idle_watch = None
        workers, self._workers = self._workers, []
        if not workers:
            return
        for conversation_id in list(self._pending):
            self._enqueue(conversation_id)
        for _ in workers:
            await self._queue.put(_Stop())
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(asyncio.shield(worker) for worker in workers))
        except TimeoutError:
            log.warning(
                "stopping with %d conversations not yet learned from; caught up at the next start", self.backlog
            )
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _watch_idle(self) -> None:
        interval = max(1.0, self.config.idle.total_seconds() / 4)
        while True:
            await asyncio.sleep(interval)
            self.enqueue_idle()

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, _Stop):
                    return
                self._queued.discard(item)
                if self.activity is not None:
                    await self.activity.until_quiet(self.yield_s)
                try:
                    await self.learn(item)
                except DATABASE_REFUSALS:  # the same batch would be refused again: left for the next start
                    log.exception("learning from conversation %s failed", item)
                except DATABASE_FAULTS as exc:  # a restart, a dropped connection: the marker did not move
                    log.warning("learning from conversation %s failed (%s); trying again once it is quiet", item, exc)
                    self._again_when_quiet(item)
                except Exception:  # the marker did not move, so the next start's catch-up finds it again
                    log.exception("learning from conversation %s failed", item)
            finally:
                self._queue.task_done()

    # -- one batch --------------------------------------------------------------------------------------

    async def learn(self, conversation_id: int) -> LearnOutcome:
        """Learn from the conversation's messages not yet learned from (one batch, at most one LLM answer used)."""
        async with self._locks.hold(conversation_id):
            outcome = await self._learn(conversation_id)
            if outcome.status == "withdrawn":  # read again, without whoever opted out meanwhile
                log.info("conversation %s: someone opted out while it was read; reading it again", conversation_id)
                outcome = await self._learn(conversation_id)
            return outcome

    async def _learn(self, conversation_id: int) -> LearnOutcome:
        now = self.clock()
        async with self.database.session() as session:
            repo = LearningRepository(session)
            messages = await repo.unlearned(conversation_id, limit=self.config.batch_limit)
            if not messages:
                return LearnOutcome("nothing")
            guild_id = messages[-1].guild_id
            speakers = {m.user_id for m in messages if m.role == "user" and m.user_id is not None}
            allowed, guild_allows = await repo.learning_allowed(sorted(speakers), guild_id)
            if not guild_allows or not allowed:
                await repo.mark_learned(conversation_id, messages[-1].id)
                return LearnOutcome("not_allowed", messages=len(messages))
            if guild_id is not None and self.quota is not None and await self.quota.exhausted_in(guild_id):
                return LearnOutcome("unavailable", messages=len(messages))  # the guild's budget is spent today
            facts = FactRepository(session)
            usable = {user_id: await facts.usable(user_id, guild_id=guild_id, now=now) for user_id in sorted(allowed)}
            # "Tomorrow" is the day after the one it was said on, however late the batch is learned.
            today = await _their_day(session, allowed, messages[-1].created_at)
        persona = await self.personas.for_guild(guild_id)
        labels = speaker_labels(
            [
                (m.user_id, m.speaker or "Someone")
                for m in messages
                if m.role == "user" and m.user_id is not None and m.user_id in allowed
            ],
            persona_name=persona.name,
        )
        names = {label: user_id for user_id, label in labels.items()}
        known = await self._known_facts(usable, messages, labels)

        try:
            shown, extraction, calls = await self._read(messages, allowed, labels, known, persona.name, today)
        except LLMUnavailable as exc:
            log.warning("learning postponed: the model is unavailable (%s)", exc)
            if _down(exc):  # it may answer in a while
                self._again_when_quiet(conversation_id)
            return LearnOutcome("unavailable", messages=len(messages))
        try:
            outcome = await self._apply(
                conversation_id, messages, shown, allowed, names, known, extraction, persona, now
            )
        except _Taken:  # what it taught is written once, by the process that wrote it first
            log.info("conversation %s: another process learned from this batch first", conversation_id)
            return LearnOutcome("taken", messages=len(messages), llm_calls=calls)
        if outcome is None:
            return LearnOutcome("withdrawn", messages=len(messages), llm_calls=calls)
        self.batches += 1
        return LearnOutcome(
            "learned" if extraction is not None else "skipped",
            messages=len(messages),
            facts_added=outcome[0],
            facts_refreshed=outcome[1],
            facts_superseded=outcome[2],
            llm_calls=calls,
        )

    async def _read(
        self,
        messages: Sequence[UnlearnedMessage],
        allowed: set[int],
        labels: dict[int, str],
        known: dict[int, tuple[StoredFact, str]],
        persona_name: str,
        today: date,
    ) -> tuple[list[UnlearnedMessage], Extraction | None, int]:
        """The messages shown to the model, its reading of them and the calls it took. When the model's window
        is smaller than the transcript needs, the transcript is halved (its newest lines kept), down to a floor.
        Raises LLMUnavailable when the model cannot answer."""
        refused = 0  # calls refused as too long: they count too

        async def read(budget: int) -> tuple[list[UnlearnedMessage], Extraction | None, int]:
            nonlocal refused
            shown = self._transcript(messages, allowed, budget)
            lines = [TranscriptLine(_speaker_in(m, labels), m.content) for m in shown]
            try:
                extraction, calls = await self._extract(lines, known, persona_name, today)
            except PromptTooLong:
                refused += 1
                raise
            return shown, extraction, refused + calls

        what = f"a learning batch for {self.config.model}"
        return await fitting_the_window(read, self.config.transcript_tokens, floor=MIN_TRANSCRIPT_TOKENS, what=what)

    def _transcript(
        self, messages: Sequence[UnlearnedMessage], allowed: set[int], budget: int
    ) -> list[UnlearnedMessage]:
        """The messages the model is shown, in order (its chat lines, numbered from 1): the newest that fit in
        ``budget`` tokens, without anyone who opted out, nor Hearth's answers to them (which retell them)."""
        shown: list[UnlearnedMessage] = []
        tokens = 0
        count = counter_for(self.config.model)  # the model's tokenizer where one is known (bot/llm/tokens.py)
        for message in reversed(messages):
            if message.user_id not in allowed and (message.role == "user" or message.user_id is not None):
                continue
            tokens += count(message.content) + 4
            if shown and tokens > budget:
                break
            shown.append(message)
        return list(reversed(shown))

    async def _known_facts(
        self, usable: dict[int, list[StoredFact]], messages: Sequence[UnlearnedMessage], labels: dict[int, str]
    ) -> dict[int, tuple[StoredFact, str]]:
        """Per speaker, the stored facts usable here that are closest to what the batch is about (fact id →
        the fact and its speaker's name as the transcript shows it, ``labels``)."""
        batch_text = "\n".join(m.content for m in messages if m.role == "user" and m.user_id in usable)
        query: Vectors | None = None
        chosen: dict[int, tuple[StoredFact, str]] = {}
        for user_id, facts in usable.items():
            if len(facts) > self.config.known_facts:
                if query is None:  # background work: not embed_one, which goes before queued work
                    query = (await self.embedder.embed([batch_text]))[0]
                with_vectors = [f for f in facts if f.embedding is not None]
                scores = cosine_to([f.embedding for f in with_vectors if f.embedding is not None], query)
                ranked = [f for _, f in sorted(zip(scores, with_vectors, strict=True), key=lambda p: -p[0])]
                facts = (ranked + [f for f in facts if f.embedding is None])[: self.config.known_facts]
            for fact in facts:
                chosen[fact.id] = (fact, labels.get(user_id, "Someone"))
        return chosen

    async def _extract(
        self, lines: list[TranscriptLine], known: dict[int, tuple[StoredFact, str]], persona_name: str, today: date
    ) -> tuple[Extraction | None, int]:
        """The model's reading of the batch: asked once, and once more if the answer cannot be used; None when
        there is none to be had (no usable answer, or the batch refused for its content). Raises LLMUnavailable
        when the model cannot answer."""
        messages = extraction_messages(
            lines,
            [KnownFact(fact.id, speaker, fact.fact_type, fact.content) for fact, speaker in known.values()],
            persona_name=persona_name,
            today=today,
        )
        extra: dict[str, Any] = dict(self.config.extra_body)
        if self.config.response_format == "json_schema":
            extra["response_format"] = response_format()
        elif self.config.response_format == "json_object":
            extra["response_format"] = {"type": "json_object"}
        options = ChatOptions(
            model=self.config.model,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            extra_body=extra,
        )
        calls = 0
        for attempt in (1, 2):
            self.llm_calls += 1
            calls += 1
            try:
                completion = await self.chat.generate(messages, options)
            except ContentRefused as exc:
                if _down(exc):  # a fallback's filter, while the model asked for was down: that one may read it
                    raise
                log.warning("skipping a learning batch of %d lines: refused for its content (%s)", len(lines), exc)
                return None, calls
            except NoRoomToAnswer as exc:  # not down: it thought through all its room before answering
                if attempt == 2 and _down(exc):  # a fallback's, while the model asked for was down: read again later
                    raise
                if attempt == 2:  # read again, the batch would fail so at each new message and hold up the next ones
                    log.warning(
                        "skipping a learning batch of %d lines: no answer even with more room (%s)", len(lines), exc
                    )
                    return None, calls
                cut = True
            else:
                try:
                    extraction = parse_extraction(completion.text)
                except ExtractionError as exc:
                    log.warning("learning answer unusable (attempt %d): %s", attempt, exc)
                else:
                    for reason in extraction.dropped:  # the rest of the answer is used
                        log.info("learning answer: left out an unusable entry, %s", reason)
                    return extraction, calls
                cut = completion.finish_reason == "length"
            if attempt == 1 and cut:  # the same room would end it at the same place
                more_room = max(options.max_tokens * 2, self.config.max_tokens_when_cut)
                log.warning(
                    "the learning answer ran out of its %d tokens (a reasoning model's thinking counts in them);"
                    " asking again with %d",
                    options.max_tokens,
                    more_room,
                )
                options = replace(options, max_tokens=more_room)
        log.warning("skipping a learning batch of %d lines: no usable answer after two attempts", len(lines))
        return None, calls

    async def _apply(
        self,
        conversation_id: int,
        messages: Sequence[UnlearnedMessage],
        shown: Sequence[UnlearnedMessage],
        allowed: set[int],
        names: dict[str, int],
        known: dict[int, tuple[StoredFact, str]],
        extraction: Extraction | None,
        persona: PersonaView,
        now: datetime,
    ) -> tuple[int, int, int] | None:
        """Write everything the batch taught, and move the marker, in one transaction; None (and nothing
        written) when someone in ``allowed`` may no longer be learned about. Raises :class:`_Taken` (and nothing is
        written) when another process learned from the batch meanwhile (each one's start-up catch-up finds every
        conversation behind, so two starting together read the same batches at once)."""
        guild_id = messages[-1].guild_id
        channel_id = messages[-1].channel_id
        user_messages = [m for m in messages if m.role == "user" and m.user_id in allowed]
        facts = extraction.facts if extraction is not None else []
        vectors = await self._fact_vectors(facts, names, known)
        baseline = moods.baseline_of(persona.config)
        added = refreshed = superseded = 0

        async with self.database.session() as session:
            learning = LearningRepository(session)
            if not await _still_allowed(learning, allowed, guild_id):
                return None
            fact_repo = FactRepository(session)
            # Style: every message, no model needed.
            styles = StyleRepository(session)
            by_user: dict[int, list[UnlearnedMessage]] = {}
            for message in user_messages:
                assert message.user_id is not None
                by_user.setdefault(message.user_id, []).append(message)
            # Held to the commit: a batch of the same writer elsewhere at once (another guild, another process)
            # waits, then folds its messages into the style this one leaves.
            known_styles = await styles.hold_many(by_user)
            new_styles: dict[int, CommunicationStyle] = {}
            for writer_id, said in by_user.items():
                style = known_styles.get(writer_id) or CommunicationStyle()
                for message in said:
                    style = updated(style, signals_of(message.content))
                new_styles[writer_id] = style
            await styles.save_many(new_styles)

            if extraction is not None:
                read = {m.id: m.content for m in user_messages}
                unchanged = await learning.unchanged(read) if facts else set()
                for index, fact in enumerate(facts):
                    user_id = _user_for(fact.speaker, names)
                    if user_id is None:
                        continue  # about someone not learned from (opted out, Hearth itself, a stranger)
                    if _said_by_another(fact.line, shown, user_id):
                        continue  # what someone else said about them, which they never said
                    source = _source_of(fact.line, shown, messages, user_id)
                    if source not in unchanged:
                        continue  # its message was deleted or edited while the model read it
                    vector = vectors[index]
                    usable = await fact_repo.usable(user_id, guild_id=guild_id, now=now)
                    # Only a shown fact still current may be named: one this answer already replaced or took back
                    # is gone, and what the answer says again of it is read against what replaced it.
                    still = {row.id for row in usable}
                    own = {row.id for row, _ in known.values() if row.user_id == user_id and row.id in still}
                    nearest = _nearest(usable, vector)
                    decision = decide(fact, own, nearest)
                    if decision.kind == "ignore":
                        continue
                    if decision.kind == "refresh" and decision.target_id is not None:
                        old = next((row for row in usable if row.id == decision.target_id), None)
                        base = old.confidence if old is not None else fact.confidence
                        await fact_repo.refresh(
                            decision.target_id, confidence=refreshed_confidence(base, fact.confidence), at=now
                        )
                        refreshed += 1
                        continue
                    if decision.kind == "retract" and decision.target_id is not None:
                        # Deleting or editing the message that took it back makes it current again.
                        await fact_repo.supersede(decision.target_id, at=now, retracted_in=source)
                        superseded += 1
                        continue
                    # A new version stays where the fact it replaces was kept: one set for everywhere stays so.
                    scope, fact_guild = ("guild", guild_id) if guild_id is not None else ("dm", None)
                    replaced = decision.target_id if decision.kind == "supersede" else None
                    if replaced is not None and replaced in known:
                        scope, fact_guild = known[replaced][0].scope, known[replaced][0].guild_id
                    new_id = await fact_repo.add(
                        NewFact(
                            user_id=user_id,
                            fact_type=fact.type,
                            content=fact.content,
                            scope=scope,
                            guild_id=fact_guild,
                            learned_at=now,
                            confidence=fact.confidence,
                            importance=fact.importance,
                            temporal_relevance=fact.temporal,
                            expiry_date=expiry_for(fact.temporal, fact.expires_in_days, now),
                            extracted_from_message_id=source,
                        ),
                        vector,
                        self.embedder.model_name if vector is not None else None,
                    )
                    added += 1
                    if decision.kind == "supersede" and decision.target_id is not None:
                        await fact_repo.supersede(decision.target_id, at=now, by=new_id)
                        superseded += 1
                    if fact_guild is not None and vector is not None and fact.type in _ASSOCIABLE:
                        await self._associate(fact_repo, new_id, fact.type, vector, fact_guild, user_id, now)

                await self._relationships(session, by_user, extraction, names, shown, guild_id, now)
                place = _place_of(messages)
                if place is not None:  # Hearth's own mood and opinions: this guild's, or this one DM's
                    await self._mood(session, place, extraction, baseline, user_messages, now)
                    opinions = OpinionRepository(session)
                    topics = {
                        normalize_topic(t.name): t.sentiment for t in extraction.topics if normalize_topic(t.name)
                    }
                    current = await opinions.get_many(place, list(topics))
                    for topic, sentiment in topics.items():
                        opinion = after_discussion(current.get(topic), topic=topic, sentiment=sentiment, at=now)
                        await opinions.save(place, opinion, sources=sorted(by_user))
                events = EventRepository(session)
                await self._cancel_follow_ups_brought_up(session, events, by_user)
                # Each is asked on the evening of its day where its person lives (/timezone set), or in UTC.
                askers = [a for f in extraction.follow_ups if (a := _user_for(f.speaker, names)) is not None]
                zones = {
                    user_id: zone_or_utc(preferences.timezone if preferences is not None else None)
                    for user_id, (_, preferences) in (await UserRepository(session).people(askers)).items()
                }
                for follow_up in extraction.follow_ups:
                    asker = _user_for(follow_up.speaker, names)
                    if asker is None or _said_by_another(follow_up.line, shown, asker):
                        continue
                    due = follow_up.due(now, zones.get(asker, UTC))
                    if due is None:  # past, or too far ahead to be the date meant
                        log.info(
                            "left out the follow-up %r: its date %s is not upcoming", follow_up.topic, follow_up.date
                        )
                        continue
                    await events.add_follow_up(
                        user_id=asker,
                        guild_id=guild_id,
                        channel_id=channel_id,
                        topic=follow_up.topic,
                        question=follow_up.question,
                        trigger_at=due,
                        context={"conversation_id": conversation_id},
                    )
                await self._birthdays(session, extraction, names, shown, now)
            if not await learning.mark_batch_learned(conversation_id, messages[0].id, messages[-1].id):
                raise _Taken
        return added, refreshed, superseded

    async def _fact_vectors(
        self,
        facts: Sequence[ExtractedFact],
        names: dict[str, int],
        known: dict[int, tuple[StoredFact, str]],
    ) -> list[Vectors]:
        """Each fact's vector. A fact its speaker already has word for word takes that fact's stored vector (the
        same text embeds the same): models restate what they were shown, and the model thread is the scarcest
        part of a busy bot. The others are embedded together."""
        stored = {
            (row.user_id, row.content.strip()): row.embedding for row, _ in known.values() if row.embedding is not None
        }
        reused: list[Vectors | None] = [
            stored.get((user_id, fact.content.strip())) if (user_id := _user_for(fact.speaker, names)) else None
            for fact in facts
        ]
        missing = [fact.content for fact, vector in zip(facts, reused, strict=True) if vector is None]
        fresh: Iterator[Vectors] = iter(await self.embedder.embed(missing) if missing else [])
        return [vector if vector is not None else next(fresh) for vector in reused]

    @staticmethod
    async def _birthdays(
        session: AsyncSession,
        extraction: Extraction,
        names: dict[str, int],
        shown: Sequence[UnlearnedMessage],
        now: datetime,
    ) -> None:
        """A birthday someone mentions becomes their birthday (greeted yearly) unless they set one already;
        what they set themselves always wins. Only their own: one another person gives them is not. Its year is
        kept only when it can be the one they were born in (not this year's or next year's birthday). Written
        with the rest of the batch, so that one is never kept without the other."""
        for birthday in extraction.birthdays:
            user_id = _user_for(birthday.speaker, names)
            if user_id is None or _said_by_another(birthday.line, shown, user_id):
                continue
            preferences = await UserRepository(session).preferences(user_id)
            if preferences.birthday_month is None and not preferences.learning_opt_out:
                year = birthday.birth_year(now.date())
                await schedule_birthday(session, user_id, birthday.month, birthday.day, year, now=now)

    @staticmethod
    async def _cancel_follow_ups_brought_up(
        session: AsyncSession, events: EventRepository, by_user: dict[int, list[UnlearnedMessage]]
    ) -> None:
        """A pending follow-up is dropped once its user brings the topic up first ("the exam went great!"), in their
        own words: a message they forward is someone else's news. Only what they say from the topic's day on (in
        their time zone) can tell how it went: "I'm nervous about the exam" the day before asks for the question."""
        people = await UserRepository(session).people(sorted(by_user))
        for user_id, said in by_user.items():
            preferences = people[user_id][1] if user_id in people else None
            zone = zone_or_utc(preferences.timezone if preferences is not None else None)
            for event in await events.pending(user_id, event_type="follow_up"):
                since = start_of_day(first_due(event.trigger_at, event.context), zone)
                after = " ".join(own_words(m.content) for m in said if m.created_at >= since)
                topic = set(_WORD.findall(event.title.casefold()))
                if topic and topic <= set(_WORD.findall(after.casefold())):
                    await events.cancel_of(user_id, event.id)

    async def _associate(
        self,
        facts: FactRepository,
        fact_id: int,
        fact_type: str,
        vector: Vectors,
        guild_id: int,
        user_id: int,
        now: datetime,
    ) -> None:
        """Link a new guild fact to other members' facts it shares (same guild, guild-scoped facts only)."""
        others = [
            row
            for row in await facts.guild_facts_of_others(guild_id, user_id, [fact_type], now)
            if row.embedding is not None
        ]
        for row, similarity in zip(
            others, cosine_to([r.embedding for r in others if r.embedding is not None], vector), strict=True
        ):
            if similarity < ASSOCIATION_SIMILARITY:
                continue
            kind = association_type(fact_type, row.fact_type, similarity)
            if kind is not None:
                await facts.associate(fact_id, row.id, kind=kind, strength=association_strength(similarity), at=now)

    async def _relationships(
        self,
        session: AsyncSession,
        by_user: dict[int, list[UnlearnedMessage]],
        extraction: Extraction,
        names: dict[str, int],
        shown: Sequence[UnlearnedMessage],
        guild_id: int | None,
        now: datetime,
    ) -> None:
        repo = RelationshipRepository(session)
        references: dict[int, list[tuple[Literal["nickname", "inside_joke"], str]]] = {}
        for reference in extraction.references:
            user_id = _user_for(reference.speaker, names)
            if user_id is not None and not _said_by_another(reference.line, shown, user_id):
                references.setdefault(user_id, []).append((reference.kind, reference.text))
        known = await repo.get_many(by_user, guild_id)
        exchanges: dict[int, Exchange] = {}
        for user_id, said in by_user.items():
            state = known.get(user_id) or relationships.Relationship()
            own = [own_words(m.content) for m in said]  # what they forward is not how they talk with Hearth
            words = sum(len(text.split()) for text in own) / len(own)
            depth = min(1.0, words / 40) * 0.6 + extraction.intensity * 0.4
            state = relationships.after_exchange(state, sentiment=extraction.sentiment, depth=depth, at=now)
            for kind, text in references.get(user_id, []):
                state = relationships.with_reference(state, kind, text)
            exchanges[user_id] = Exchange(state, float(sum(len(text) for text in own) / len(own)))
        await repo.save_many(guild_id, exchanges)

    async def _mood(
        self,
        session: AsyncSession,
        place: StatePlace,
        extraction: Extraction,
        baseline: moods.Mood,
        user_messages: Sequence[UnlearnedMessage],
        now: datetime,
    ) -> None:
        repo = MoodRepository(session)
        # Held from here to the commit, so two batches in one place at once (two workers, two processes) each
        # nudge the mood the other left; the place's opinions, written after, are kept in step by the same lock.
        stored, since = await repo.hold(place, new=baseline, at=now)
        before = moods.decayed(stored, baseline=baseline, elapsed=now - since)
        after = moods.nudged(before, sentiment=extraction.sentiment, intensity=extraction.intensity, baseline=baseline)
        await repo.save(place, after, at=now)
        # Significant: far enough from the last mood written to the history (or the baseline), so a slow drift
        # of small steps is recorded too.
        if moods.is_significant_change(await repo.last_recorded(place) or baseline, after):
            trigger = user_messages[-1].user_id if user_messages else None
            await repo.record_change(
                place,
                after,
                at=now,
                trigger_type="conversation",
                user_id=trigger,
                description=f"felt {moods.mood_name(after)} after a conversation",
            )


class _Taken(Exception):
    """Another process moved the conversation's marker past the batch being written: it is rolled back."""


async def _still_allowed(learning: LearningRepository, allowed: set[int], guild_id: int | None) -> bool:
    """Whether everyone the batch was read for may still be learned about there: the model takes seconds, and
    /optout, an erasure or the guild's switch may come meanwhile."""
    now_allowed, guild_allows = await learning.learning_allowed(sorted(allowed), guild_id)
    return guild_allows and now_allowed == allowed


async def _their_day(session: AsyncSession, user_ids: set[int], at: datetime) -> date:
    """The day it was ``at`` for the people of a batch, in their time zones (/timezone set), for the model to read
    "tomorrow" and "on Friday" from; UTC's when their days differ (people on both sides of midnight)."""
    people = await UserRepository(session).people(sorted(user_ids))
    days = {at.astimezone(zone_or_utc(p.timezone if p is not None else None)).date() for _, p in people.values()}
    return days.pop() if len(days) == 1 else at.astimezone(UTC).date()


def _place_of(messages: Sequence[UnlearnedMessage]) -> StatePlace | None:
    """Where the batch was said: its guild, or the DM of the user it belongs to (None: a DM whose user is
    unknown, which holds no state of Hearth's)."""
    last = messages[-1]
    if last.guild_id is not None:
        return StatePlace(guild_id=last.guild_id)
    owner = last.dm_user_id or next((m.user_id for m in messages if m.role == "user" and m.user_id), None)
    return None if owner is None else StatePlace(dm_user_id=owner)


def _speaker_in(message: UnlearnedMessage, labels: dict[int, str]) -> str | None:
    """Who said ``message``, as the transcript names them (None: Hearth)."""
    if message.role == "assistant":
        return None
    return labels.get(message.user_id, "Someone") if message.user_id is not None else "Someone"


def _user_for(speaker: str, names: dict[str, int]) -> int | None:
    """The user a name in the model's answer refers to (as written in the transcript, any case)."""
    if speaker in names:
        return names[speaker]
    folded = {name.casefold(): user for name, user in names.items()}
    return folded.get(speaker.strip().casefold())


def _nearest(rows: Sequence[StoredFact], vector: Vectors | None) -> tuple[int, float] | None:
    candidates = [row for row in rows if row.embedding is not None]
    if vector is None or not candidates:
        return None
    scores = cosine_to([row.embedding for row in candidates if row.embedding is not None], vector)
    best = max(range(len(scores)), key=lambda i: scores[i])
    return candidates[best].id, scores[best]


def _said_by_another(line: int | None, shown: Sequence[UnlearnedMessage], user_id: int) -> bool:
    """Whether the chat line the model names for what it learned about ``user_id`` (a fact, a birthday, a
    follow-up, a nickname) is another person's: in a group, "Ana is moving to Berlin" or "Ana's birthday is May 4"
    said by Ben is not something Ana stated (a line of Hearth's may restate theirs)."""
    if line is None or not 1 <= line <= len(shown):
        return False
    said = shown[line - 1]
    return said.role == "user" and said.user_id != user_id


def _source_of(
    line: int | None, shown: Sequence[UnlearnedMessage], messages: Sequence[UnlearnedMessage], user_id: int
) -> int | None:
    """The message a fact about ``user_id`` was learned from: the chat line the model named, when that line is
    theirs; else their last message in the batch (a model that gives no line, or a wrong one)."""
    if line is not None and 1 <= line <= len(shown):
        said = shown[line - 1]
        if said.role == "user" and said.user_id == user_id:
            return said.id
    return next((m.id for m in reversed(messages) if m.user_id == user_id and m.role == "user"), None)
