"""What Hearth knows and feels, as prompt sections: facts about the speaker, the relationship, its mood, its
opinions on the topics at hand and the speaker's way of writing.

Only what may be used here reaches a prompt: the speaker's facts from this place (this guild, or DMs) and the
ones they made global; nothing learned about someone who opted out. Mood and opinions are Hearth's own, per
guild and per DM: each user's DM is a place of its own (``StatePlace``), so what Hearth came to feel or think in
one person's DM never reaches another's.
"""

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from bot.db.engine import Database
from bot.db.repositories.facts import FactRepository
from bot.db.repositories.opinions import OpinionRepository
from bot.db.repositories.speaker_state import SpeakerStateRepository
from bot.db.types import utcnow
from bot.domain import mood as moods
from bot.domain import relationship as relationships
from bot.domain.budget import TokenCounter, estimate_tokens, take_lines_within
from bot.domain.facts import fact_line, prompt_order
from bot.domain.opinions import topics_in, voice
from bot.domain.place import StatePlace
from bot.domain.style import guidance
from bot.llm.embeddings import cosine_to
from bot.services.memory import Query


class NoCompanion:
    """The companion switched off: no facts, relationship, mood, opinions or style in prompts."""

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
    ) -> dict[str, str]:
        return {}


class CompanionContext:
    def __init__(self, database: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        self.clock = clock

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
    ) -> dict[str, str]:
        """Prompt section name → text for a reply to ``user_id`` saying ``text`` here (only sections with
        something to say); the facts are cut to their budget in whole lines."""
        now = self.clock()
        async with self.database.reading() as session:
            state = await SpeakerStateRepository(session).get(user_id, guild_id)
            # Nothing learned about someone who opted out (or is gone) reaches a prompt.
            known = state if state is not None and not state.learning_opt_out else None
            facts = await FactRepository(session).usable(user_id, guild_id=guild_id, now=now) if known else []
            place = StatePlace.of(guild_id, user_id)
            opinions = await OpinionRepository(session).get_many(place, topics_in(text)) if text.strip() else {}
        relationship = known.relationship if known else None
        style = known.style if known else None
        mood = state.mood if state else None

        sections: dict[str, str] = {}
        if facts:
            relevance: dict[int, float] | None = None
            vectors = [row for row in facts if row.embedding is not None]
            if query is not None and query.embedded and vectors:
                scores = cosine_to(
                    [row.embedding for row in vectors if row.embedding is not None], await query.vector()
                )
                relevance = {row.id: score for row, score in zip(vectors, scores, strict=True)}
            ordered = prompt_order(facts, now, relevance)
            lines = take_lines_within(
                [f"- {fact_line(fact)}" for fact in ordered], budgets.get("facts", 0), count=count
            )
            if lines:
                sections["facts"] = "\n".join(lines)
        if relationship is not None:
            sections["relationship"] = relationships.describe(relationship, now=now)
        if mood is not None:
            baseline = moods.baseline_of(persona_config)
            current = moods.decayed(mood[0], baseline=baseline, elapsed=now - mood[1])
            sections["mood"] = moods.describe(current)
        voiced = [line for opinion in opinions.values() if (line := voice(opinion))]
        if voiced:
            sections["opinions"] = "\n".join(sorted(voiced))
        if style is not None and (advice := guidance(style)):
            sections["style"] = advice
        return sections
