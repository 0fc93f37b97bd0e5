"""The responder, the last stage: a turn's reply, from what Hearth knows to the stored answer.

It reads the conversation's history, recalls long-term memories in this place's scope and what Hearth knows of
the speaker (the two at once), builds the prompt (pure, bot/domain/prompt.py), calls the model once, streaming
a preview, with no transaction open while it writes; then delivers the reply in messages of at most 2,000
characters and stores it with its token usage. A fault in what the prompt reads costs that part of the prompt,
never the reply; a model that cannot answer gets the persona's apology.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from bot.db.engine import DATABASE_FAULTS
from bot.domain import guild_settings
from bot.domain.budget import TokenCounter, estimate_tokens
from bot.domain.chunking import split_message
from bot.domain.cut import marked_if_cut
from bot.domain.prompt import MIN_CONTEXT_TOKENS, Budget, PromptRequest, Turn, build_prompt
from bot.domain.recall import RecallScope
from bot.llm.chat import ChatModel, ChatOptions, Completion, LLMUnavailable, fitting_the_window
from bot.services.conversation.config import ConversationConfig, StoredTurn
from bot.services.conversation.delivery import PreviewPump, refused, send_safely, shown_part
from bot.services.conversation.holds import Holds
from bot.services.conversation.store import TurnStore
from bot.services.incoming import (
    AnswerWithdrawn,
    IncomingMessage,
    ReplyRefused,
    ReplyRemoved,
    ReplyTarget,
    TurnOutcome,
)
from bot.services.memory import MemorySection, Query
from bot.services.personas import PersonaView
from bot.services.tasks import discard

log = logging.getLogger(__name__)


class Recollection(Protocol):
    """Long-term memory as a reply uses it (MemoryService, or NoRecall when memory is off)."""

    def query(self, text: str, *, place: str | None = None) -> Query: ...

    def forget_names(self) -> None: ...

    async def prompt_section(
        self,
        query: Query,
        scope: RecallScope,
        *,
        now: datetime,
        tokens: int,
        exclude_message_ids: Sequence[int] = (),
        count: TokenCounter = estimate_tokens,
    ) -> MemorySection: ...


class Knowledge(Protocol):
    """What Hearth knows and feels, as prompt sections (CompanionContext, or NoCompanion)."""

    async def sections(
        self,
        *,
        user_id: int,
        guild_id: int | None,
        text: str,
        persona_config: Mapping[str, Any],
        budgets: Mapping[str, int],
        query: Query | None = None,
        count: TokenCounter = estimate_tokens,
    ) -> dict[str, str]: ...


def _nothing() -> None:
    pass


class Responder:
    def __init__(
        self,
        chat: ChatModel,
        store: TurnStore,
        memory: Recollection,
        companion: Knowledge,
        holds: Holds,
        config: ConversationConfig,
        *,
        clock: Callable[[], datetime],
        token_counter: Callable[[str], TokenCounter] = lambda model: estimate_tokens,
    ) -> None:
        self.chat = chat
        self.token_counter = token_counter  # model name → how its prompt is counted (bot/llm/tokens.py)
        self.store = store
        self.memory = memory
        self.companion = companion
        self.holds = holds
        self.config = config
        self.clock = clock

    async def answer(
        self,
        incoming: IncomingMessage,
        batch: list[StoredTurn],
        persona: PersonaView,
        settings: guild_settings.GuildSettings,
        target: ReplyTarget,
        *,
        started: float,
        query: Query | None = None,
        prepared: Callable[[], None] = _nothing,
        was_away: bool = False,
        host: str | None = None,
    ) -> TurnOutcome:
        """Answer ``batch`` (the last message of which is ``incoming``) and store the reply. ``query``: the
        single message's query made as it arrived (a batch of several, or none given, is queried afresh by all
        its messages); ``prepared`` is called once the model is about to be called; ``started``: when the
        message arrived (``time.perf_counter``), for the reply's own time. ``host``: when ``persona`` is a
        character of the channel's cast, the channel's own persona's name (the reply is stored as the
        character's)."""
        if query is None or len(batch) > 1:
            query = self.memory.query("\n".join(turn.text for turn in batch), place=incoming.memory_place)
        try:
            return await self._answer(
                incoming, batch, persona, settings, target, started, query, prepared, was_away, host
            )
        finally:
            query.close()

    async def _answer(
        self,
        incoming: IncomingMessage,
        batch: list[StoredTurn],
        persona: PersonaView,
        settings: guild_settings.GuildSettings,
        target: ReplyTarget,
        started: float,
        query: Query,
        prepared: Callable[[], None],
        was_away: bool,
        host: str | None,
    ) -> TurnOutcome:
        last = batch[-1]
        try:
            # "typing…" until the reply is out, not only until it is written: Discord may take a while to show it
            # (discord.py retrying a failing send), and the person sees nothing happening meanwhile otherwise.
            async with target.typing():
                try:
                    completion, recalled = await self.compose(
                        incoming,
                        batch,
                        persona,
                        settings,
                        target,
                        query=query,
                        prepared=prepared,
                        was_away=was_away,
                        host=host,
                    )
                except LLMUnavailable as exc:
                    place = incoming.place
                    log.error("no reply for channel %s user %s: %s", place.channel_id, incoming.author.discord_id, exc)
                    await self.store.settle_quietly(batch)
                    sent = await send_safely(target, [persona.apology], incoming)
                    return TurnOutcome(
                        "apologised", reply=persona.apology, sent_ids=sent or [], answered_messages=len(batch)
                    )
                self.holds.spent(last.guild_id, (completion.prompt_tokens or 0) + (completion.completion_tokens or 0))
                pieces = split_message(completion.text)
                sent = await send_safely(target, pieces, incoming, regenerable=True)
        except AnswerWithdrawn as withdrawn:  # the person deleted what was being answered: nothing shown or kept
            log.info("not answering in channel %s: %s", incoming.place.channel_id, withdrawn)
            gone = [turn for turn in batch if turn.discord_message_id == incoming.message_id]
            rest = [turn for turn in batch if turn.discord_message_id != incoming.message_id]
            await self.store.withdraw(gone or batch, incoming.message_id)
            following = rest[0].discord_message_id if gone and rest else None
            if following is None:
                return TurnOutcome("withdrawn", answered_messages=len(batch))
            # The rest of the batch is still to answer: afresh, for the reply written spoke to what was withdrawn.
            target.reply_to(following)
            return await self.answer(
                replace(incoming, message_id=following),
                rest,
                persona,
                settings,
                target,
                started=started,
                prepared=prepared,
                was_away=was_away,
                host=host,
            )
        except ReplyRemoved as removed:  # taken down as it was shown: not shown again, not kept, not caught up
            log.info("stopped answering in channel %s: %s", incoming.place.channel_id, removed)
            await self.store.settle_quietly(batch)
            return TurnOutcome("removed", answered_messages=len(batch))
        except ReplyRefused as refusal:  # a permission taken away, the person's DMs closed, the channel deleted
            await self.store.settle_quietly(batch)
            return refused(refusal, incoming, answered_messages=len(batch))
        if sent is None:  # nothing of it shown (logged): not kept as if read, the conversation goes on without it
            await self.store.settle_quietly(batch)
            return TurnOutcome("undelivered", answered_messages=len(batch))
        model_ms = completion.seconds * 1000
        # Until the reply is out: storing it comes after, and holds up the channel's next turn, not this one.
        own_ms = (time.perf_counter() - started) * 1000 - model_ms
        reply = shown_part(completion.text, pieces, sent)  # cut short where Discord took only its first pieces
        await self.store.store_reply(
            incoming,
            batch,
            reply,
            at=self.clock(),
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            model=completion.model,
            latency_ms=int(model_ms),
            recalled=recalled.memory_ids,
            shown_in=sent,
            speaker=persona.name if host is not None else None,
            was_away=was_away,
        )
        return TurnOutcome(
            "replied",
            reply=reply,
            sent_ids=sent,
            answered_messages=len(batch),
            own_ms=own_ms,
            model_ms=model_ms,
        )

    async def compose(
        self,
        incoming: IncomingMessage,
        batch: list[StoredTurn],
        persona: PersonaView,
        settings: guild_settings.GuildSettings,
        target: ReplyTarget,
        *,
        query: Query,
        prepared: Callable[[], None] = _nothing,
        was_away: bool = False,
        leave_out: Sequence[int] = (),
        host: str | None = None,
    ) -> tuple[Completion, MemorySection]:
        """The model's reply to ``batch`` (streamed to ``target``'s preview, not sent) and the memories its prompt
        showed. ``leave_out``: stored turns the prompt must not show (the reply being regenerated). Raises
        LLMUnavailable when the model cannot answer. The caller shows ``target``'s typing for as long as it should
        last (until the reply is out, not only written)."""
        exclude_ids = [turn.message_row_id for turn in batch]
        try:
            history = await self.store.history(batch, leave_out=leave_out)
        except DATABASE_FAULTS as exc:  # a fault costs the history, never the reply
            log.warning(
                "could not read conversation %s's history (%s); answering without", batch[-1].conversation_id, exc
            )
            history = []
        place = incoming.place
        options = self.options(persona, settings)
        budget = Budget(
            context_tokens=self.config.context_tokens,
            reply_tokens=options.max_tokens,
            count=self.token_counter(options.model),
        )
        # Recall waits on the query's embedding, what Hearth knows does not: it runs alongside (see tasks.py).
        knowing = asyncio.create_task(self._companion_sections(batch, persona, budget, query))
        try:
            in_history = [row.message_id for row in history] + exclude_ids + list(leave_out)
            recalled = await self._recall(batch, query, in_history, budget)
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
            current=[Turn("user", turn.text, turn.speaker, images=turn.images) for turn in batch],
            history=[
                Turn("assistant" if row.role == "assistant" else "user", row.content, row.speaker) for row in history
            ],
            sections={**known, "memories": recalled.text},
            is_group=not place.is_dm,
            language=settings.language,
            now_text=self.clock().strftime("%A %d %B %Y, %H:%M UTC"),
            was_away=was_away,
            host=host,
        )
        preview = PreviewPump(target, self.config.edit_interval_s)
        prepared()

        async def ask(context_tokens: int) -> Completion:
            window = replace(budget, context_tokens=context_tokens)
            return await self.chat.generate(build_prompt(request, window), options, on_text=preview)

        try:
            completion = await fitting_the_window(
                ask,
                budget.context_tokens,
                floor=MIN_CONTEXT_TOKENS,
                what=f"a reply's prompt for {options.model} (set LLM_CONTEXT_TOKENS to the model's window)",
            )
        finally:
            await preview.stop()  # before the reply (or an apology) is shown: no preview lands after it
        preview.check()
        # An answer cut off part way (a content filter, its max_tokens) is shown, and kept, as cut (bot/domain/cut.py).
        return replace(completion, text=marked_if_cut(completion.text, completion.finish_reason)), recalled

    async def _recall(
        self, batch: list[StoredTurn], query: Query, in_history: list[int], budget: Budget
    ) -> MemorySection:
        """Long-term memories for the prompt; a fault here costs the section, never the reply."""
        tokens = budget.section_budget("memories")
        if tokens <= 0:
            return MemorySection("", [])
        last = batch[-1]
        try:
            return await self.memory.prompt_section(
                query,
                RecallScope(user_id=last.user_id, guild_id=last.guild_id),
                now=self.clock(),
                tokens=tokens,
                exclude_message_ids=in_history,
                count=budget.count,
            )
        except Exception:  # the embedder, the database, anything: answer without memories rather than not at all
            log.exception("could not recall memories for conversation %s; answering without", last.conversation_id)
            return MemorySection("", [])

    async def _companion_sections(
        self, batch: list[StoredTurn], persona: PersonaView, budget: Budget, query: Query
    ) -> dict[str, str]:
        """Facts, relationship, mood, opinions and style for the prompt; a fault costs them, never the reply."""
        last = batch[-1]
        try:
            return await self.companion.sections(
                user_id=last.user_id,
                guild_id=last.guild_id,
                text=query.text,
                persona_config=persona.config,
                budgets={name: budget.section_budget(name) for name in ("facts",)},
                query=query,
                count=budget.count,
            )
        except Exception:
            log.exception(
                "could not gather what Hearth knows for conversation %s; answering without", last.conversation_id
            )
            return {}

    def options(self, persona: PersonaView, settings: guild_settings.GuildSettings) -> ChatOptions:
        """Model settings: the guild's choice, else the persona's, else the bot's."""
        config = self.config

        def pick(chosen: Any, key: str, default: Any) -> Any:
            return guild_settings.in_effect(chosen, persona.config, key, default).value

        room = guild_settings.in_effect(None, persona.config, "max_tokens", config.max_tokens)  # no server sets it
        return ChatOptions(
            model=str(pick(settings.model, "model", config.model)),
            temperature=float(pick(settings.temperature, "temperature", config.temperature)),
            max_tokens=int(room.value),
            extra_headers=config.extra_headers,
            extra_body=config.extra_body,
            # The setting to raise when the model runs out of room: the persona's own, else LLM_MAX_TOKENS.
            room_setting=(
                f"max_tokens in the config of persona {persona.name}"
                if room.chosen_by == "persona"
                else "LLM_MAX_TOKENS"
            ),
        )
