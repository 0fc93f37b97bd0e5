"""What Hearth holds about a person, in their hands: see it, add to it, export it, erase it, stop the learning.

Users are named by their row id (``users.id``), places by the guild's row id (None: DMs); the Discord layer
resolves both with :meth:`Directory.identify`. Erasure is real: the user row is deleted and every row about
them goes with it (foreign keys cascade; see ``tests/integration/db/test_erasure.py``).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.db.changes import Change
from bot.db.engine import Database
from bot.db.repositories.facts import FactRepository, NewFact
from bot.db.repositories.privacy import ForgottenFact, PastTurn, PrivacyRepository, QuotingMemory
from bot.db.repositories.relationships import RelationshipRepository
from bot.db.repositories.runtime import RuntimeRepository
from bot.db.repositories.styles import StyleRepository
from bot.db.repositories.users import UserRepository
from bot.db.session import AsyncSession
from bot.db.types import utcnow
from bot.domain import relationship as relationships
from bot.domain.facts import StoredFact
from bot.domain.style import guidance
from bot.domain.text import clean_text
from bot.errors import HearthError
from bot.llm.embeddings import Embedder
from bot.services.database_retry import through_database_faults
from bot.services.embedding_worker import EmbeddingWorker

MAX_REMEMBER_CHARS = 500


class NotYours(HearthError, LookupError):
    """The user has no such fact (or reminder, or thing) of their own."""


class OptedOut(HearthError):
    """The user opted out of learning, so Hearth keeps no new facts about them."""


@dataclass(frozen=True, slots=True)
class Profile:
    """What Hearth knows about someone in one place (facts usable there, relationship, style), and their choices:
    ``opted_out`` of learning, ``proactive_off``: no birthday greetings nor follow-ups for them."""

    facts: list[StoredFact]
    relationship_level: str | None
    relationship_score: float | None
    style: str | None
    opted_out: bool
    proactive_off: bool


class PrivacyService:
    def __init__(
        self,
        database: Database,
        embedder: Embedder,
        *,
        worker: EmbeddingWorker | None = None,
        on_erased: Callable[[int], None] | None = None,
        on_turns_changed: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
        retry_budget_s: float = 30.0,
    ) -> None:
        self.database = database
        self.embedder = embedder
        self.retry_budget_s = retry_budget_s  # how long a deletion or edit Discord reported keeps being retried
        self.worker = worker
        self.on_erased = on_erased
        self.on_turns_changed = on_turns_changed  # cached history may hold deleted or edited turns
        self.clock = clock

    async def profile(self, user_id: int, guild_id: int | None) -> Profile:
        now = self.clock()
        async with self.database.session() as session:
            facts = await FactRepository(session).usable(user_id, guild_id=guild_id, now=now)
            relationship = await RelationshipRepository(session).get(user_id, guild_id)
            style = await StyleRepository(session).get(user_id)
            preferences = await UserRepository(session).preferences(user_id)
        level = score = None
        if relationship is not None:
            current = relationships.decayed(relationship, now=now)
            level, score = str(relationships.level_of(current.score)), current.score
        return Profile(
            facts=facts,
            relationship_level=level,
            relationship_score=score,
            style=guidance(style) if style is not None else None,
            opted_out=preferences.learning_opt_out,
            proactive_off=preferences.proactive_opt_out,
        )

    async def facts_here(self, user_id: int, guild_id: int | None) -> list[StoredFact]:
        async with self.database.reading() as session:
            return await FactRepository(session).usable(user_id, guild_id=guild_id, now=self.clock())

    async def forgettable_here(self, user_id: int, guild_id: int | None) -> list[tuple[StoredFact, bool]]:
        """What the user may forget here, each with whether it is current: the facts usable here, then those
        learned here that ended with nothing replacing them (taken back, or expired), which are still held. A fact
        that was replaced goes with the one that replaced it (see :meth:`forget_fact`)."""
        now = self.clock()
        async with self.database.reading() as session:
            facts = FactRepository(session)
            current = await facts.usable(user_id, guild_id=guild_id, now=now)
            ended = await facts.ended_here(user_id, guild_id=guild_id, now=now)
        return [(fact, True) for fact in current] + [(fact, False) for fact in reversed(ended)]

    async def remember(self, user_id: int, guild_id: int | None, text: str, *, everywhere: bool = False) -> int:
        """Keep a fact the user gave: usable here (this guild, or DMs), or everywhere; returns its id."""
        content = " ".join(text.split())
        if not content:
            raise HearthError("Tell me what to remember, e.g. /remember I'm vegetarian.")
        if len(content) > MAX_REMEMBER_CHARS:
            raise HearthError(f"That's a lot to remember at once: keep it under {MAX_REMEMBER_CHARS} characters.")
        async with self.database.session() as session:
            if (await UserRepository(session).preferences(user_id)).learning_opt_out:
                raise OptedOut("You've opted out, so I'm not keeping facts about you. Use /optin first.")
        vector = await self.embedder.embed_one(content)
        scope = "global" if everywhere else ("guild" if guild_id is not None else "dm")
        fact = NewFact(
            user_id=user_id,
            fact_type="general",
            content=content,
            scope=scope,
            guild_id=guild_id if scope == "guild" else None,
            learned_at=self.clock(),
            confidence=1.0,
            importance=0.7,
            source="user",
        )
        async with self.database.session() as session:
            return await FactRepository(session).add(fact, vector, self.embedder.model_name)

    async def forget_fact(self, user_id: int, fact_id: int) -> ForgottenFact:
        """Erase one of the user's facts for good, with every version of it (what it replaced, kept as its history,
        and what replaced it). :class:`NotYours` if they have no such fact."""
        async with self.database.session() as session:
            forgotten = await PrivacyRepository(session).delete_fact(user_id, fact_id)
        if forgotten is None:
            raise NotYours(f"I don't hold a fact #{fact_id} about you. /memory show lists what I do hold.")
        return forgotten

    async def forget_everything(self, discord_id: int) -> bool:
        """Erase the user and everything about them, everywhere; False if Hearth held nothing."""
        conversations: list[int] = []
        quoting: list[QuotingMemory] = []
        replying: list[PastTurn] = []
        async with self.database.session() as session:
            user = await UserRepository(session).get_by_discord_id(discord_id)
            if user is not None:
                conversations = await PrivacyRepository(session).conversations_of(user.id)
                quoting = await PrivacyRepository(session).memories_quoting(user.id, conversations)
        erased = False
        if user is not None:
            # Their words also live on in others' memories: as the context a reply was embedded with, and in
            # the summaries of conversations they were part of; and in the topics of Hearth's opinions in guilds
            # they talked in. Those go too, in the same transaction. A memory that quoted them loses its context
            # and its vector; the embedding worker re-embeds it from its own text alone.
            async with self.database.session() as session:
                privacy = PrivacyRepository(session)
                await privacy.drop_contexts(quoting)
                await privacy.delete_summaries(conversations)
                await privacy.delete_opinions_from(user.id)
                # Others' turns replying to their messages keep those after their own words: they go from there
                # too, and so from the contexts and summaries that quote such a turn.
                if replying := await privacy.unquote_replies_to(user.id):
                    await privacy.unquote(replying)
                erased = await UserRepository(session).delete(user.id)
                await privacy.purge_word_index()
                await RuntimeRepository(session).announce(Change("erased", discord_id))  # other processes' caches
            # SQLite zeroes what it frees (secure_delete, bot/db/engine.py); the write-ahead log still holds the
            # pages as they were until a checkpoint empties it.
            async with self.database.reading() as session:
                await PrivacyRepository(session).checkpoint()
        if self.on_erased is not None:
            self.on_erased(discord_id)
        if (quoting or replying) and self.worker is not None:
            self.worker.wake()
        return erased

    async def forget_deleted_messages(self, discord_message_ids: Sequence[int]) -> int:
        """These messages were deleted on Discord (by their author, or a moderator; Hearth's own replies too):
        Hearth forgets them. Each stored turn goes with its memory, the context it gave the next turn's memory
        (embedded again without it), the summaries of its conversation, which may retell it, and the facts
        learned from it. Returns how many turns went (none for a message Hearth never stored). Retried while the
        database fails: Discord reports a deletion once, and missing it would keep words their author took back."""

        async def once(attempt: int) -> int:
            retry = attempt > 1
            async with self.database.session() as session:
                privacy = PrivacyRepository(session)
                deleted = await privacy.delete_turns(discord_message_ids)
                unquoted = await self._take_back(session, deleted) if deleted else False
            if deleted or retry:  # on a retry, an earlier try may have deleted them, its answer lost
                self._turns_changed(reembed=unquoted or retry)
            return len(deleted)

        what = f"forgetting deleted messages {list(discord_message_ids)}"
        return await through_database_faults(once, what=what, budget_s=self.retry_budget_s)

    async def follow_edited_message(
        self, discord_message_id: int, text: str, images: Sequence[str] | None = None
    ) -> bool:
        """A person edited a message on Discord: Hearth keeps the new text. The stored turn and its memory are
        rewritten (the memory embedded again); the old words go from where they were quoted, as after a
        deletion: the next turn's memory context and the conversation's summaries, and the facts learned from
        them (an edit often takes something back; a fact still true is learned again when it comes up). False
        when Hearth stored no such turn or its text did not change (Discord also reports an edit when a link's
        preview arrives). ``images``: the links of the images the message now shows the model, where known: those
        the edit removed go from the turn and its memory too. Retried while the database fails, as a deletion
        is."""

        async def once(attempt: int) -> bool:
            retry = attempt > 1
            async with self.database.session() as session:
                privacy = PrivacyRepository(session)
                before = await privacy.edit_user_turn(discord_message_id, clean_text(text), images)
                if before is not None:
                    await self._take_back(session, [before])
            if before is not None or retry:  # on a retry, an earlier try may have made the edit, its answer lost
                self._turns_changed(reembed=True)  # the turn's own memory has new text
            return before is not None

        what = f"following the edit of message {discord_message_id}"
        return await through_database_faults(once, what=what, budget_s=self.retry_budget_s)

    async def _take_back(self, session: AsyncSession, turns: Sequence[PastTurn]) -> bool:
        """What deleted or edited ``turns`` said, taken out of what it reached: the contexts and summaries that
        quote it, the facts learned from it, and (announced) other processes' cached history. True when a memory
        lost its vector, for the embedding worker to remake."""
        privacy = PrivacyRepository(session)
        # Someone's reply to a message keeps it after their own words: the message's words go from there too.
        replying = await privacy.unquote_replies_to_turns(turns)
        unquoted = await privacy.unquote([*turns, *replying]) or bool(replying)
        await FactRepository(session).forget_learned_from([turn.message_id for turn in turns], now=self.clock())
        await RuntimeRepository(session).announce(Change("turns"))
        return unquoted

    def _turns_changed(self, *, reembed: bool) -> None:
        if self.on_turns_changed is not None:
            self.on_turns_changed()
        if reembed and self.worker is not None:
            self.worker.wake()

    async def export(self, discord_id: int) -> dict[str, Any]:
        """Everything held about the user, table by table (vectors left out: they are derived from the text)."""
        async with self.database.reading() as session:
            user = await UserRepository(session).get_by_discord_id(discord_id)
            tables = await PrivacyRepository(session).rows_about(user.id) if user is not None else {}
        return {
            "discord_user_id": str(discord_id),
            "exported_at": self.clock().isoformat(),
            "about": (
                "Everything Hearth stores about you, table by table. Embedding vectors are left out, and so is what "
                "others said (the message before yours that a memory of yours is kept with, and a message you "
                "replied to or forwarded, marked where it was)."
            ),
            "tables": tables,
        }

    async def set_learning(self, user_id: int, *, opted_out: bool) -> None:
        async with self.database.session() as session:
            (await UserRepository(session).preferences(user_id)).learning_opt_out = opted_out
