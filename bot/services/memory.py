"""Long-term memory: remembering what was said (embedded in batches) and recalling it, scoped, for a prompt.

Recall runs two searches in the place's scope — vector similarity and full-text — and fuses their rankings
(see ``bot/domain/recall.py``), so an exact name or date and a paraphrase are both found. The turns next to the
best of them then share in their scores (``spread``): an answer that shares no word with the question is found
through the question it answers; what the people a question names said rises (``favour_named``). The vector
search embeds the query without the names of the people in scope (``without_names``): names are for the word
search and for knowing whom the question is about.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from bot.db.engine import Database
from bot.db.repositories.memories import MemoryRepository, MemoryRow, NewMemory
from bot.domain.budget import TokenCounter, estimate_tokens, take_lines_within
from bot.domain.memory_text import embedding_text
from bot.domain.recall import (
    Candidate,
    Names,
    RecallScope,
    Weights,
    describe,
    favour_named,
    fused_scores,
    order,
    search_terms,
    spread,
    without_names,
)
from bot.domain.text import clean_text
from bot.llm.embeddings import Embedder, Vectors
from bot.services.tasks import discard

log = logging.getLogger(__name__)

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")

# About the fewest tokens a memory takes in the prompt ('Yesterday in #general, Ana said: "ok"' and its newline): how
# many to recall so that a section of any budget can be filled.
MIN_LINE_TOKENS = 10


@dataclass(frozen=True, slots=True)
class Recalled:
    memory: MemoryRow
    line: str  # as the prompt shows it


@dataclass(frozen=True, slots=True)
class MemorySection:
    text: str
    memory_ids: list[int]  # the memories it shows: mark them recalled (MemoryRepository.touch) once used


class Query:
    """What a reply recalls by: its text, and that text's embedding, started when the query is made (as the
    message arrives, so it overlaps storing it). Made by :meth:`MemoryService.query`; :meth:`close` it when
    done, used or not."""

    def __init__(
        self,
        text: str,
        embedding: "asyncio.Future[Vectors] | None" = None,
        *,
        embedded_text: str | None = None,
        place: str | None = None,
    ) -> None:
        self.text = text
        self._embedding = embedding
        self.embedded_text = text if embedded_text is None else embedded_text  # what ``embedding`` is of
        self.place = place  # where it was asked (see MemoryService.query)

    @property
    def embedded(self) -> bool:
        """Whether there is an embedding to wait for (there is none when memory is off)."""
        return self._embedding is not None

    async def vector(self) -> Vectors:
        if self._embedding is None:
            raise LookupError("this query is not embedded")
        return await self._embedding

    def close(self) -> None:
        """Done with the query: an embedding still under way is dropped, a failed one is not logged as unread."""
        if self._embedding is not None:
            discard(self._embedding)


class NoRecall:
    """Long-term memory switched off: queries are not embedded, and the prompt has no memory section."""

    def forget_names(self) -> None:
        """Nothing is read, so nothing is kept."""

    def query(self, text: str, *, place: str | None = None) -> Query:
        return Query(clean_text(text), place=place)

    async def prompt_section(
        self,
        query: Query,
        scope: RecallScope,
        *,
        now: datetime,
        tokens: int,
        exclude_message_ids: Sequence[int] = (),
        count: TokenCounter = estimate_tokens,
    ) -> MemorySection:
        return MemorySection("", [])


class MemoryService:
    def __init__(
        self,
        database: Database,
        embedder: Embedder,
        *,
        candidates: int = 50,
        neighbours_of: int = 20,
        weights: Weights | None = None,
        names_ttl_s: float = 600.0,
    ) -> None:
        self.database = database
        self.embedder = embedder
        self.candidates = candidates  # per search
        self.neighbours_of = neighbours_of  # the best fused memories whose neighbours are brought in
        self.weights = weights or Weights()
        # The names of the people in each scope (when they were read, and the names), and by the place a query
        # is made in; see _names_in.
        self.names_ttl_s = names_ttl_s
        # Keyed by whose memories a scope recalls: in a guild everyone's recalls share one read, and the names a
        # query made there is embedded without are the ones its recall strips (else it is embedded again).
        self._names: dict[tuple[str, int], tuple[float, Names]] = {}
        self._names_at: dict[str, Names] = {}
        self._reading_names: dict[tuple[str, int], asyncio.Future[Names]] = {}
        self._names_read = 0  # how many times the names were forgotten: a read from before does not fill the cache

    def forget_names(self) -> None:
        """Drop the names read (someone was erased, or their words deleted): the next recall reads them again."""
        self._names.clear()
        self._names_at.clear()
        self._reading_names.clear()
        self._names_read += 1

    async def remember(self, memories: Sequence[NewMemory]) -> list[int]:
        """Embed (one batch, off the event loop) and store memories; returns their ids."""
        if not memories:
            return []
        vectors = await self.embedder.embed([embedding_text(m.speaker_name, m.content, m.context) for m in memories])
        async with self.database.session() as session:
            return await MemoryRepository(session).add_many(memories, vectors, self.embedder.model_name)

    async def recall(
        self,
        query: "str | Query",
        scope: RecallScope,
        *,
        now: datetime,
        limit: int = 10,
        exclude_message_ids: Sequence[int] = (),
    ) -> list[Recalled]:
        """The memories most worth bringing to a reply about ``query``, best first, ``limit`` at most.

        A :class:`Query` made earlier (see :meth:`query`) brings its embedding, started already: the word search
        runs while it is still being computed."""
        prepared = query if isinstance(query, Query) and query.embedded else None
        text = clean_text(query.text if isinstance(query, Query) else query)
        if not text.strip():
            if prepared is not None:
                await prepared.vector()
            return []
        terms = search_terms(text)

        async def nearest() -> tuple[list[MemoryRow], Names]:
            names = await self._names_in(scope)
            if isinstance(query, Query) and query.place is not None:
                _put_bounded(self._names_at, query.place, names)
            meaning = without_names(text, names)
            if prepared is not None and meaning == prepared.embedded_text:
                query_vector = await prepared.vector()
            else:  # the place's names were not known yet: the prepared embedding is left to the query's close()
                query_vector = await self.embedder.embed_one(meaning)
            async with self.database.reading() as session:
                found = await MemoryRepository(session).by_vector(
                    query_vector,
                    scope,
                    model=self.embedder.model_name,
                    limit=self.candidates,
                    exclude_message_ids=exclude_message_ids,
                )
            return found, names

        async def matching() -> list[MemoryRow]:
            async with self.database.reading() as session:
                return await MemoryRepository(session).by_words(
                    terms, scope, limit=self.candidates, exclude_message_ids=exclude_message_ids
                )

        # Two connections, so the two searches (and the query's embedding) overlap rather than add up; the word
        # search is usually done by the time the vector is, so the vector search runs inline (see tasks.py).
        searching_words = asyncio.create_task(matching())
        try:
            by_vector, names = await nearest()
            by_words = await searching_words
        finally:
            discard(searching_words)
        rows = {row.id: row for row in (*by_vector, *by_words)}
        scores = fused_scores([[row.id for row in by_vector], [row.id for row in by_words]], weights=self.weights)
        if self.weights.neighbour_turns > 0 and self.weights.neighbour_share > 0:
            best = sorted((i for i in scores if rows[i].kind == "message"), key=lambda i: (-scores[i], i))
            async with self.database.reading() as session:
                neighbours, near = await MemoryRepository(session).neighbours(
                    best[: self.neighbours_of],
                    scope,
                    turns=self.weights.neighbour_turns,
                    exclude_message_ids=exclude_message_ids,
                )
            rows.update(near)
            scores = spread(scores, neighbours, weights=self.weights)
        speakers = {i: row.speaker_name for i, row in rows.items()}
        scores = favour_named(scores, speakers, names.people_in(text), weights=self.weights)
        candidates = {i: Candidate(i, row.created_at, row.importance) for i, row in rows.items()}
        ranked = order(scores, candidates, now=now, weights=self.weights)[:limit]
        return [
            Recalled(
                rows[i],
                describe(
                    rows[i].content,
                    speaker=rows[i].speaker_name,
                    kind=rows[i].kind,
                    created_at=rows[i].created_at,
                    channel_name=rows[i].channel_name,
                    is_dm=scope.is_dm,
                    now=now,
                ),
            )
            for i in ranked
        ]

    async def _names_in(self, scope: RecallScope) -> Names:
        """The names of the people whose words ``scope`` holds. Only the first recall in a place waits for them;
        later ones use what was read, and a read older than ``names_ttl_s`` is redone in the background (someone
        new is left in the query's embedding until then, which only costs that query a little precision)."""
        cached = self._names.get(scope.memories)
        if cached is None:
            return await asyncio.shield(self._read_names(scope))
        if time.monotonic() - cached[0] > self.names_ttl_s:
            self._read_names(scope)
        return cached[1]

    def _read_names(self, scope: RecallScope) -> "asyncio.Future[Names]":
        """Reads ``scope``'s names into the cache, once however many replies ask for them at the same time."""
        reading = self._reading_names.get(scope.memories)
        if reading is None:
            reading = asyncio.ensure_future(self._fetch_names(scope))
            self._reading_names[scope.memories] = reading

            def done(future: "asyncio.Future[Names]") -> None:
                self._reading_names.pop(scope.memories, None)
                if not future.cancelled() and (error := future.exception()) is not None:
                    log.warning("could not read the names of the people recalled in %s: %s", scope, error)

            reading.add_done_callback(done)
        return reading

    async def _fetch_names(self, scope: RecallScope) -> Names:
        reading = self._names_read
        async with self.database.reading() as session:
            everyone, voices = await MemoryRepository(session).speaker_names(scope)
        names = Names.of(everyone, voices=voices)
        if reading == self._names_read:
            _put_bounded(self._names, scope.memories, (time.monotonic(), names))
        return names

    def query(self, text: str, *, place: str | None = None) -> Query:
        """A query whose embedding starts now, so it overlaps the work a reply does before it recalls. ``place``
        names where it is asked (a server, or one person's DMs): once a recall there has read the names of its
        people, a query made there is embedded without them from the start (see :meth:`recall`)."""
        text = clean_text(text)  # a lone surrogate cannot be encoded for the model
        names = self._names_at.get(place) if place is not None else None
        meaning = without_names(text, names) if names is not None else text
        return Query(text, self.embedder.start_one(meaning), embedded_text=meaning, place=place)

    async def prompt_section(
        self,
        query: "str | Query",
        scope: RecallScope,
        *,
        now: datetime,
        tokens: int,
        exclude_message_ids: Sequence[int] = (),
        count: TokenCounter = estimate_tokens,
    ) -> MemorySection:
        """The prompt's memory section: recalled memories, best first, cut to ``tokens`` as ``count`` counts."""
        recalled = await self.recall(
            query,
            scope,
            now=now,
            limit=max(tokens // MIN_LINE_TOKENS, 1),
            exclude_message_ids=exclude_message_ids,
        )
        lines = take_lines_within([r.line for r in recalled], tokens, count=count)
        return MemorySection("\n".join(lines), [r.memory.id for r in recalled[: len(lines)]])


def _put_bounded(cache: dict[_Key, _Value], key: _Key, value: _Value) -> None:
    """``cache[key] = value``, forgetting the entry put longest ago past 10,000 keys (a bot in many DMs)."""
    cache.pop(key, None)
    cache[key] = value
    if len(cache) > 10_000:
        del cache[next(iter(cache))]
