"""Closing idle conversations, and remembering each one as a short summary written by the model.

Runs off the reply path (a scheduler job): one LLM call per closed conversation (two when it ran out of room). A
summary is a memory of kind ``summary`` in the conversation's scope, dated when the talk ended, so "what did we talk
about last week" has something to find even when no single message matches. A conversation whose summary could not be
written (the model was unavailable) is tried again at the next run; its existence is the marker. While the model
or the database is down, a run stops at the first conversation it cannot summarise: the rest wait for the next.
One whose request the endpoint refuses is put off, for an hour the first time and twice as long at each refusal in
a row (up to a day: ``REFUSED_BACKOFF``), and asked about again after that; a refusal for what the conversation
says (a content filter) leaves its place to the next conversation, any other refusal (a model name the endpoint
does not know, a provider's bad hour) stops the run there, as the next conversations would most likely be refused
too. A transcript longer than the model's window (smaller than the endpoint said) is cut to its last lines, halved until
it fits. A summary a content filter cut off part way is put off as one refused for what the conversation says: what
the filter let through is not the whole talk, and would be recalled as if it were. One that ran out of its
``max_tokens`` (a reasoning model's thinking counts in them) is asked for again once with ``max_tokens_when_cut``
(``LLM_MAX_TOKENS``) when that is more, and one still cut short is kept with a mark saying so; one the model thought
through all its room on without a word of an answer is asked for again so too, and when it still has none, put off as
a refused one is while the sweep goes on to the next (the model is not down). A summary the model
wrote is stored through database faults (a restart, a dropped connection) for up to ``STORE_BUDGET_S``, rather than
asked for again at the next sweep. Several processes on one PostgreSQL database sweep at once and share the work:
each conversation is held (an advisory lock) by the one summarising it.
"""

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.db.engine import DATABASE_FAULTS, DATABASE_REFUSALS, Database
from bot.db.models import Conversation
from bot.db.repositories.conversations import ConversationRepository, HistoryRow
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.db.repositories.runtime import RuntimeRepository
from bot.db.types import utcnow
from bot.domain.budget import take_lines_within
from bot.domain.cut import marked_if_cut
from bot.domain.prompt import ChatMessage
from bot.domain.retry import Backoff, PutOff
from bot.errors import HearthError, describe_connection_error
from bot.llm.chat import (
    ChatModel,
    ChatOptions,
    Completion,
    ContentRefused,
    LLMUnavailable,
    NoRoomToAnswer,
    RequestRefused,
    fitting_the_window,
)
from bot.services.database_retry import through_database_faults
from bot.services.memory import MemoryService
from bot.services.personas import PersonaService

log = logging.getLogger(__name__)

SUMMARY_INSTRUCTIONS = (
    "You are {name}. Below is a conversation you took part in. Write a summary of it for your own long-term"
    " memory in two to four sentences: who was there and what was said that will matter later (plans, news,"
    " feelings, names, dates, promises). Write about yourself as 'I' and about others by name. Reply with the"
    " summary only."
)

# The shortest transcript a summary is asked for when the model's window refuses longer ones.
MIN_TRANSCRIPT_TOKENS = 200

# How long storing a written summary is tried while the database fails.
STORE_BUDGET_S = 30.0

# How long a conversation whose summary the endpoint refused waits before it is asked about again: an hour, twice as
# long at each refusal in a row, at most a day.
REFUSED_BACKOFF = Backoff(base_s=3600.0, factor=2.0, cap_s=86400.0, jitter=0.0)


@dataclass(frozen=True, slots=True)
class SummaryConfig:
    model: str
    idle: timedelta = timedelta(minutes=60)
    lookback: timedelta = timedelta(days=30)  # older unsummarised conversations are left alone
    per_run: int = 20
    transcript_tokens: int = 3000
    max_tokens: int = 250
    max_tokens_when_cut: int = 600  # the room a summary that ran out of ``max_tokens`` is asked for again with
    temperature: float = 0.3


def transcript(rows: Sequence[HistoryRow], persona_name: str, tokens: int) -> str:
    """The conversation as "Name: text" lines (a reply under the cast character who said it, else
    ``persona_name``); when too long, its last lines that fit in ``tokens``."""
    lines = [
        f"{row.speaker or persona_name}: {row.content}"
        if row.role == "assistant"
        else f"{row.speaker or 'Someone'}: {row.content}"
        for row in rows
    ]
    kept = take_lines_within(list(reversed(lines)), tokens)
    return ("…\n" if len(kept) < len(lines) else "") + "\n".join(reversed(kept))


class ConversationSummaries:
    def __init__(
        self,
        database: Database,
        chat: ChatModel,
        memory: MemoryService,
        personas: PersonaService,
        config: SummaryConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database = database
        self.chat = chat
        self.memory = memory
        self.personas = personas
        self.config = config
        self.clock = clock
        # Conversations the endpoint refused to summarise, put off for a while (REFUSED_BACKOFF), so they neither
        # cost a request every sweep nor keep newer conversations waiting for a place.
        self._put_off = PutOff(REFUSED_BACKOFF)

    async def close_idle(self) -> int:
        """Close conversations idle longer than the idle setting and summarise them; returns summaries written."""
        now = self.clock()
        idle_before = now - self.config.idle
        async with self.database.session() as session:
            repo = ConversationRepository(session)
            await repo.close_idle(idle_before=idle_before, at=now)
            due = await repo.due_for_summary(
                idle_before=idle_before,
                since=now - self.config.lookback,
                limit=self.config.per_run,
                skip=self._put_off.waiting(now),
            )
        written = 0
        for done, conversation in enumerate(due):
            try:
                written += await self._summarise_once(conversation)
                self._put_off.answered(conversation.id)
            except NoRoomToAnswer as exc:  # not down: it thought through all its room on this one; the next may fit
                until = self._put_off.refused(conversation.id, now)
                log.warning(
                    "the model wrote no summary of conversation %s, even with more room (%s): summaries are given up"
                    " to LLM_MAX_TOKENS; asking again after %s",
                    conversation.id,
                    exc,
                    f"{until:%Y-%m-%d %H:%M} UTC",
                )
            except ContentRefused as exc:  # for what this one says: the next one may be answered
                until = self._put_off.refused(conversation.id, now)
                log.warning(
                    "the model refused to summarise conversation %s (%s); asking again after %s",
                    conversation.id,
                    exc,
                    f"{until:%Y-%m-%d %H:%M} UTC",
                )
            except RequestRefused as exc:
                # Not for what this one says (a model name the endpoint does not know, a provider's bad hour): the
                # next ones would most likely be refused too. This one is put off, so it cannot hold up the rest.
                until = self._put_off.refused(conversation.id, now)
                log.warning(
                    "the model refused to summarise conversation %s (%s); asking again after %s, and %d conversations"
                    " wait for the next summary sweep",
                    conversation.id,
                    exc,
                    f"{until:%Y-%m-%d %H:%M} UTC",
                    len(due) - done - 1,
                )
                break
            except LLMUnavailable as exc:
                # Down, or refusing every request (a wrong key, no credits): the next conversations would fare no
                # better, some waiting out the retries in turn.
                log.warning(
                    "the model is unavailable (%s); %d conversations wait for the next summary sweep",
                    exc,
                    len(due) - done,
                )
                break
            except DATABASE_REFUSALS:  # this conversation's own rows: the next ones may be stored
                log.exception("could not summarise conversation %s; trying again next time", conversation.id)
            except DATABASE_FAULTS as exc:
                # Down or restarting (a written summary was already tried through it): the next conversations
                # could be neither read nor stored.
                log.warning(
                    "the database is unavailable (%s); %d conversations wait for the next summary sweep",
                    describe_connection_error(exc),
                    len(due) - done,
                )
                break
            except HearthError:
                log.exception("could not summarise conversation %s; trying again next time", conversation.id)
        return written

    async def _summarise_once(self, conversation: Conversation) -> int:
        """Summarise the conversation unless another process on the database is summarising it, or has: processes
        started together sweep at the same times, and would each ask the model and keep a summary of their own."""
        async with self.database.reading() as session:  # its connection holds the lock while the model writes
            held = RuntimeRepository(session)
            if not await held.try_hold("summary", conversation.id):
                return 0
            try:
                if await ConversationRepository(session).is_summarised(conversation.id):
                    return 0
                return await self.summarise(conversation)
            finally:
                with contextlib.suppress(*DATABASE_FAULTS):  # a lost connection has let go of it already
                    await held.release("summary", conversation.id)

    async def summarise(self, conversation: Conversation) -> int:
        """Write one conversation's summary memory (one LLM call, two when the first answer ran out of room);
        returns 1 if written, 0 if nothing to say."""
        async with self.database.session() as session:
            rows = await ConversationRepository(session).history(conversation.id, up_to_id=2**62, limit=400)
            channel_name = await MemoryRepository(session).channel_name_of(conversation.id)
        if not any(row.role == "user" for row in rows):
            return 0
        persona = await self.personas.for_guild(conversation.guild_id)
        what = f"conversation {conversation.id}'s summary"

        async def ask(room: int) -> Completion:  # ``room``: the answer's max_tokens
            options = ChatOptions(model=self.config.model, temperature=self.config.temperature, max_tokens=room)

            async def within(tokens: int) -> Completion:  # the end of the talk, when its whole does not fit the window
                messages = [
                    ChatMessage("system", SUMMARY_INSTRUCTIONS.format(name=persona.name)),
                    ChatMessage("user", transcript(rows, persona.name, tokens)),
                ]
                return await self.chat.generate(messages, options)

            return await fitting_the_window(
                within, self.config.transcript_tokens, floor=MIN_TRANSCRIPT_TOKENS, what=what
            )

        room, more_room = self.config.max_tokens, self.config.max_tokens_when_cut
        try:
            completion = await ask(room)
            cut = completion.finish_reason == "length"
        except NoRoomToAnswer:  # it thought through all of them before a word of the summary
            if more_room <= room:
                raise
            cut = True
        if cut and more_room > room:
            log.info("%s ran out of its %d tokens; asking again with %d", what, room, more_room)
            room = more_room
            completion = await ask(room)
        if completion.finish_reason == "content_filter":  # the rest held back: not the whole talk
            raise ContentRefused(f"a content filter cut {what} off part way", models=[completion.model])
        if completion.finish_reason == "length":
            log.warning(
                "%s ran out of its %d tokens; kept marked as cut short (a reasoning model's thinking counts in them:"
                " give it more with LLM_MAX_TOKENS)",
                what,
                room,
            )
        summary = marked_if_cut(completion.text.strip(), completion.finish_reason)
        if not summary:
            return 0
        memory = NewMemory(
            kind="summary",
            content=summary,
            scope="dm" if conversation.guild_id is None else "guild",
            created_at=conversation.last_message_at,
            user_id=conversation.user_id,
            guild_id=conversation.guild_id,
            channel_id=conversation.channel_id,
            channel_name=channel_name,
            conversation_id=conversation.id,
            importance=0.6,
        )

        async def store(attempt: int) -> None:
            if attempt > 1:  # the previous try's commit may have gone through, its answer lost with the connection
                async with self.database.reading() as session:
                    if await ConversationRepository(session).is_summarised(conversation.id):
                        return
            await self.memory.remember([memory])

        await through_database_faults(store, what=f"storing {what}", budget_s=STORE_BUDGET_S)
        log.info("conversation %s summarised (%d turns)", conversation.id, len(rows))
        return 1
