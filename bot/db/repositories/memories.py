"""Memories: writing them, and the two searches the retriever fuses (vectors and words), within a scope."""

import itertools
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Integer,
    Table,
    TextualSelect,
    and_,
    bindparam,
    column,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Memory, Message
from bot.db.repositories._dialect import dialect_name
from bot.db.repositories._plain import execute_plain
from bot.db.types import Embedding, FloatVector
from bot.domain.memory_text import search_text
from bot.domain.recall import Neighbour, RecallScope, inverse_document_frequency, words_to_search

# BM25's usual constants: how fast repeated words stop counting, and how much a long text is discounted.
BM25_K1 = 1.2
BM25_B = 0.75
# A PostgreSQL word search looks up its rarest words until they are held by this many memories in all (see
# bot.domain.recall.words_to_search): what bounds its cost as memories pile up.
WORD_SEARCH_BUDGET = 500
# How many rows PostgreSQL's vector index is asked for, per memory a vector search returns: the nearest of them
# are kept, in exact order (see _NEAREST).
VECTOR_CANDIDATES_PER_RESULT = 2
# How precisely a memory's last recall is kept (see MemoryRepository.touch): pruning counts in days.
RECALL_MARK_RESOLUTION = timedelta(days=1)

# How many memories in the scope hold each of the query's lexemes, and ('') how many memories the scope holds
# (migration 0012): a guild's counts (its id, user 0), or a user's DMs' (guild 0, the user's id). The view adds
# the folded counts and the changes not folded yet (migration 0013), so it is exact at once.
_WORD_COUNTS = text(
    "SELECT lexeme, documents FROM memory_word_counts WHERE guild_id = :guild_id AND user_id = :user_id "
    "AND lexeme = ANY(tsvector_to_array(to_tsvector('english', :query)) || ''::text)"
)
# The memories in scope holding any searched word (the word index leads with guild_id), each scored by BM25
# over all the query's lexemes it holds (each counted once: chat turns seldom repeat a word). MATERIALIZED:
# the search runs once, not once per use. Each memory's words are read once, as an array, and the query's words
# looked up in it: matching the stored tsvector once per query word read every found row's tuple again for each
# (three quarters of the statement's time at 6k memories).
_BM25 = f"""
WITH found AS MATERIALIZED (
    SELECT id, tsvector_to_array(search_vector) AS lexemes, length(search_vector)::float8 AS length FROM memories
    WHERE search_vector @@ CAST(:words AS tsquery) AND {{scope}}
      AND (message_id IS NULL OR message_id <> ALL(CAST(:excluded AS bigint[])))
),
average AS MATERIALIZED (SELECT avg(length) AS length FROM found),
ranked AS (
    SELECT found.id, (
        SELECT sum(query.weight)
        FROM unnest(CAST(:lexemes AS text[]), CAST(:weights AS float8[])) AS query(lexeme, weight)
        WHERE query.lexeme = ANY(found.lexemes)
    ) * {BM25_K1 + 1}::float8
        / (1 + {BM25_K1}::float8 * ({1 - BM25_B}::float8 + {BM25_B}::float8 * found.length / average.length)) AS score
    FROM found CROSS JOIN average
    ORDER BY score DESC, found.id
    LIMIT :limit
)
SELECT {{columns}} FROM ranked JOIN memories ON memories.id = ranked.id ORDER BY ranked.score DESC, ranked.id
"""
_ROW_COLUMNS = (
    Memory.id,
    Memory.kind,
    Memory.content,
    Memory.speaker_name,
    Memory.channel_name,
    Memory.message_id,
    Memory.importance,
    Memory.created_at,
)  # a MemoryRow, in order


# What scope_filter() says, for the statements written out: a guild's memories, or a user's DM and global ones.
_IN_GUILD = "guild_id = :guild_id"
_IN_DMS = "user_id = :user_id AND scope IN ('dm', 'global')"
_ROW_SQL = ", ".join(f"memories.{column.key}" for column in _ROW_COLUMNS)


# SQLite's word search (see MemoryRepository._bm25_sqlite), built for the query's words: how many memories in
# scope hold each word, then the memories in scope holding any, scored as _BM25 scores them. A memory's
# length is its words (spaces + 1: what FTS5 would count, give or take punctuation).
_SQLITE_IN_GUILD = "memories.guild_id = :guild_id"
_SQLITE_IN_DMS = "memories.user_id = :user_id AND memories.scope IN ('dm', 'global')"
# CROSS JOIN: SQLite takes the tables in the order written, the word's matches first; left to choose, it would
# walk the scope's rows and ask FTS5 once for each (a hundred times slower at 20k memories).
_SQLITE_TERM_COUNT = (
    "SELECT {term}, count(*) FROM memories_fts CROSS JOIN memories ON memories.id = memories_fts.rowid "
    "WHERE memories_fts MATCH :match_{term} AND {scope}"
)
_SQLITE_TERM_HITS = "SELECT rowid, :weight_{term} FROM memories_fts WHERE memories_fts MATCH :match_{term}"
_SQLITE_BM25 = f"""
WITH hits(id, weight) AS ({{hits}}),
found AS (
    SELECT memories.id AS id, sum(hits.weight) AS weight,
           length(memories.search_text) - length(replace(memories.search_text, ' ', '')) + 1 AS length
    FROM hits CROSS JOIN memories ON memories.id = hits.id
    WHERE {{scope}}
    GROUP BY memories.id
),
average AS MATERIALIZED (SELECT avg(length) AS length FROM found),
ranked AS (
    SELECT found.id AS id, found.weight * {BM25_K1 + 1}
        / (1 + {BM25_K1} * ({1 - BM25_B} + {BM25_B} * found.length / average.length)) AS score
    FROM found CROSS JOIN average
    ORDER BY score DESC, found.id
    LIMIT :limit
)
SELECT {{columns}} FROM ranked JOIN memories ON memories.id = ranked.id ORDER BY ranked.score DESC, ranked.id
"""


def _bm25_statement(scope_condition: str) -> TextualSelect:
    return text(_BM25.format(scope=scope_condition, columns=_ROW_SQL)).columns(*_ROW_COLUMNS)


_BM25_IN_GUILD = _bm25_statement(_IN_GUILD)
_BM25_IN_DMS = _bm25_statement(_IN_DMS)


# The memories in scope nearest to the query vector (cosine). Written out, like the word search, so each reply
# runs one prepared statement: built with the ORM it cost twice the event loop's time, on the path a reply waits
# on once its query is embedded, and its text changed with the number of excluded messages.
# PostgreSQL's HNSW index is one graph over every scope, filtered as it is walked: hnsw.iterative_scan (set on
# every connection with hnsw.ef_search, bot/db/engine.py) keeps the walk going until enough rows pass the scope
# filter, but hands them over only roughly nearest first. So the walk is asked for VECTOR_CANDIDATES_PER_RESULT
# times as many rows as wanted, and those are put in exact order of distance before the nearest are kept.
_NEAREST = """
WITH nearest AS MATERIALIZED (
    SELECT id, embedding <=> :query AS distance FROM memories
    WHERE {scope} AND embedding_model = :model AND embedding IS NOT NULL
      AND (message_id IS NULL OR message_id <> ALL(CAST(:excluded AS bigint[])))
    ORDER BY embedding <=> :query LIMIT :candidates
)
SELECT {columns} FROM nearest JOIN memories ON memories.id = nearest.id
ORDER BY nearest.distance, nearest.id LIMIT :limit
"""


def _nearest_statement(scope_condition: str) -> TextualSelect:
    statement = text(_NEAREST.format(scope=scope_condition, columns=_ROW_SQL))
    return statement.bindparams(bindparam("query", type_=Embedding())).columns(*_ROW_COLUMNS)


_NEAREST_IN_GUILD = _nearest_statement(_IN_GUILD)
_NEAREST_IN_DMS = _nearest_statement(_IN_DMS)


def _tsquery_lexeme(lexeme: str) -> str:
    """A lexeme as tsquery text: quoted, so it is matched as is (already stemmed), never parsed as operators."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


# The message memories just before (side -1) and just after (side 1) each of some memories in its conversation,
# a few entries of ix_memories_conversation_id_id each however long the conversation, with their rows and
# whether the reply's scope may recall them (``allowed``): turns it may not still count as turns in between.
# One prepared statement per backend (PostgreSQL walks the index in a LATERAL join; SQLite, which has none,
# looks the few ids up in a correlated subquery).
_NEAR_POSTGRESQL = """
WITH near AS (
    SELECT seed.id AS of, near.side, near.id FROM memories AS seed
    CROSS JOIN LATERAL (
        (SELECT -1 AS side, m.id FROM memories AS m
         WHERE m.conversation_id = seed.conversation_id AND m.kind = 'message' AND m.id < seed.id
         ORDER BY m.id DESC LIMIT :turns)
        UNION ALL
        (SELECT 1 AS side, m.id FROM memories AS m
         WHERE m.conversation_id = seed.conversation_id AND m.kind = 'message' AND m.id > seed.id
         ORDER BY m.id LIMIT :turns)
    ) AS near
    WHERE seed.id = ANY(CAST(:ids AS bigint[]))
)
SELECT near.of, near.side, {columns},
       ({scope} AND (message_id IS NULL OR message_id <> ALL(CAST(:excluded AS bigint[])))) AS allowed
FROM near JOIN memories ON memories.id = near.id
"""
_NEAR_SQLITE = """
WITH seeds AS (
    SELECT id, conversation_id FROM memories WHERE id IN (SELECT value FROM json_each(:ids))
),
near AS (
    SELECT seeds.id AS of, -1 AS side, m.id FROM seeds JOIN memories AS m ON m.id IN (
        SELECT b.id FROM memories AS b
        WHERE b.conversation_id = seeds.conversation_id AND b.kind = 'message' AND b.id < seeds.id
        ORDER BY b.id DESC LIMIT :turns)
    UNION ALL
    SELECT seeds.id AS of, 1 AS side, m.id FROM seeds JOIN memories AS m ON m.id IN (
        SELECT a.id FROM memories AS a
        WHERE a.conversation_id = seeds.conversation_id AND a.kind = 'message' AND a.id > seeds.id
        ORDER BY a.id LIMIT :turns)
)
SELECT near.of, near.side, {columns},
       ({scope} AND (message_id IS NULL OR message_id NOT IN (SELECT value FROM json_each(:excluded)))) AS allowed
FROM near JOIN memories ON memories.id = near.id
"""


def _near_statement(template: str, scope_condition: str) -> TextualSelect:
    return text(template.format(scope=scope_condition, columns=_ROW_SQL)).columns(
        column("of", BigInteger), column("side", Integer), *_ROW_COLUMNS, column("allowed", Boolean)
    )


_NEAR = {
    ("postgresql", True): _near_statement(_NEAR_POSTGRESQL, _IN_GUILD),
    ("postgresql", False): _near_statement(_NEAR_POSTGRESQL, _IN_DMS),
    ("sqlite", True): _near_statement(_NEAR_SQLITE, _IN_GUILD),
    ("sqlite", False): _near_statement(_NEAR_SQLITE, _IN_DMS),
}


@dataclass(frozen=True, slots=True)
class NewMemory:
    kind: str
    content: str
    scope: str  # dm | guild | global
    created_at: datetime
    user_id: int | None = None
    guild_id: int | None = None
    channel_id: int | None = None
    channel_name: str | None = None
    conversation_id: int | None = None
    message_id: int | None = None
    speaker_name: str | None = None
    context: str | None = None  # the turn a message answered (see bot/domain/memory_text.py)
    importance: float = 0.5
    document_id: int | None = None  # the knowledge document it is a chunk of (deleted with it)


@dataclass(frozen=True, slots=True)
class MemoryRow:
    id: int
    kind: str
    content: str
    speaker_name: str | None
    channel_name: str | None
    message_id: int | None
    importance: float
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MemoryText:
    """What a memory's embedding is made from (see ``bot/domain/memory_text.py``)."""

    id: int
    content: str
    speaker_name: str | None
    context: str | None


def scope_filter(scope: RecallScope) -> ColumnElement[bool]:
    """The rows a reply in ``scope`` may recall (see :class:`RecallScope`)."""
    if scope.guild_id is not None:
        return Memory.guild_id == scope.guild_id
    return and_(Memory.user_id == scope.user_id, Memory.scope.in_(("dm", "global")))


def _not_embedded_with(model: str) -> ColumnElement[bool]:
    return Memory.embedding_model.is_(None) | (Memory.embedding_model != model)


# Every reply marks what it recalled (built once; ``ids`` expands to one parameter per memory).
_MEMORIES = cast(Table, Memory.__table__)
_TOUCH = (
    update(_MEMORIES)
    .where(
        _MEMORIES.c.id.in_(bindparam("ids", expanding=True)),
        _MEMORIES.c.last_accessed_at < bindparam("marked_before"),
    )
    .values(last_accessed_at=bindparam("now"))
)
# Memories as every turn stores them (with the message, in its transaction), ids back in the order given.
_INSERT = insert(_MEMORIES).returning(_MEMORIES.c.id, sort_by_parameter_order=True)
# The embedding worker's write: one prepared statement run for every row of a batch.
_FILL = (
    update(_MEMORIES)
    .where(
        _MEMORIES.c.id == bindparam("memory_id"),
        _MEMORIES.c.embedding.is_(None),
        _MEMORIES.c.context.is_not_distinct_from(bindparam("embedded_context", type_=_MEMORIES.c.context.type)),
        _MEMORIES.c.content == bindparam("embedded_content", type_=_MEMORIES.c.content.type),
    )
    .values(embedding=bindparam("vector", type_=Embedding()), embedding_model=bindparam("model"))
)
# The re-embedding's write: as _FILL, over a vector from another model too (not yet one from this model).
_REPLACE = (
    update(_MEMORIES)
    .where(
        _MEMORIES.c.id == bindparam("memory_id"),
        _MEMORIES.c.embedding_model.is_(None)
        | _MEMORIES.c.embedding.is_(None)
        | (_MEMORIES.c.embedding_model != bindparam("model")),
        _MEMORIES.c.context.is_not_distinct_from(bindparam("embedded_context", type_=_MEMORIES.c.context.type)),
        _MEMORIES.c.content == bindparam("embedded_content", type_=_MEMORIES.c.content.type),
    )
    .values(embedding=bindparam("vector", type_=Embedding()), embedding_model=bindparam("model"))
)


def _vectors_of(rows: Sequence[MemoryText], vectors: FloatVector, model: str) -> list[dict[str, Any]]:
    """The parameters of :data:`_FILL` or :data:`_REPLACE` for ``rows`` and their ``vectors``, row for row: each
    written only where the row still holds the text that was embedded."""
    return [
        {
            "memory_id": row.id,
            "embedded_context": row.context,
            "embedded_content": row.content,
            "vector": vectors[i],
            "model": model,
        }
        for i, row in enumerate(rows)
    ]


class MemoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_many(
        self, memories: Sequence[NewMemory], vectors: FloatVector | None, model: str | None
    ) -> list[int]:
        """Insert memories (with their embeddings, row for row, when given); returns their ids in order."""
        if not memories:
            return []
        rows = [
            {
                "kind": m.kind,
                "content": m.content,
                "scope": m.scope,
                "user_id": m.user_id,
                "guild_id": m.guild_id,
                "channel_id": m.channel_id,
                "channel_name": m.channel_name,
                "conversation_id": m.conversation_id,
                "message_id": m.message_id,
                "speaker_name": m.speaker_name,
                "context": m.context,
                "search_text": search_text(m.speaker_name, m.content, m.created_at),
                "importance": m.importance,
                "document_id": m.document_id,
                "embedding": None if vectors is None else vectors[i],
                "embedding_model": None if vectors is None else model,
                "created_at": m.created_at,
                "updated_at": m.created_at,
                "last_accessed_at": m.created_at,
            }
            for i, m in enumerate(memories)
        ]
        connection = await self.session.connection()  # no ORM bookkeeping (see _plain.py): two per message
        result = await connection.execute(_INSERT, rows)
        return list(result.scalars().all())

    async def replace_embeddings(self, rows: Sequence[MemoryText], vectors: FloatVector, model: str) -> None:
        """Store ``model``'s vectors of rows read for re-embedding, row for row. As :meth:`fill_embeddings`, a row
        whose context or content changed since it was read (an erasure, an edit on Discord), or that is gone, is
        left as it is: its vector was cleared for the embedding worker, and this one would hold the old words. So
        is a row the worker gave a vector from ``model`` meanwhile."""
        if rows:
            connection = await self.session.connection()
            await connection.execute(_REPLACE, _vectors_of(rows, vectors, model))

    async def claim_unembedded(self, limit: int, *, skip: Collection[int] = ()) -> list[MemoryText]:
        """The oldest ``limit`` memories without a vector, with what their embedded text is made of.

        On PostgreSQL the rows are locked until the transaction ends (``FOR UPDATE SKIP LOCKED``): another
        process's worker claiming meanwhile skips them and takes the next ones, so no row is embedded twice.
        SQLite serves one process, whose single worker claims in turn. ``skip``: rows the embedder failed on."""
        conditions = [Memory.embedding.is_(None)]
        if skip:
            conditions.append(Memory.id.not_in(sorted(skip)))
        statement = (
            select(Memory.id, Memory.content, Memory.speaker_name, Memory.context)
            .where(*conditions)
            .order_by(Memory.id)
            .limit(limit)
        )
        if dialect_name(self.session) == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        return [MemoryText(*row) for row in (await self.session.execute(statement)).all()]

    async def fill_embeddings(self, rows: Sequence[MemoryText], vectors: FloatVector, model: str) -> None:
        """Store the vectors of claimed rows, row for row; a row whose vector was set meanwhile, or whose context
        or content changed since it was read (an erasure took its context out, an image's description was
        added), is left as it is: its vector would be stale."""
        if rows:
            connection = await self.session.connection()  # no ORM bookkeeping (see _plain.py), many rows at once
            await connection.execute(_FILL, _vectors_of(rows, vectors, model))

    async def of_message(self, message_id: int) -> tuple[int, str | None, datetime] | None:
        """The memory of a stored turn: its id, speaker and time (None if the turn has none)."""
        statement = (
            select(Memory.id, Memory.speaker_name, Memory.created_at)
            .where(Memory.message_id == message_id, Memory.kind == "message")
            .order_by(Memory.id)
            .limit(1)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else (row[0], row[1], row[2])

    async def rewrite(self, memory_id: int, content: str, *, created_at: datetime, speaker_name: str | None) -> None:
        """Give a memory new text (an image's description added): its word search follows at once, and its vector
        is cleared, so the embedding worker makes it again from the new text."""
        await self.session.execute(
            update(Memory)
            .where(Memory.id == memory_id)
            .values(
                content=content,
                search_text=search_text(speaker_name, content, created_at),
                embedding=None,
                embedding_model=None,
            )
        )

    async def count_unembedded(self) -> int:
        """How many memories wait for a vector: the embedding worker's backlog."""
        statement = select(func.count()).select_from(Memory).where(Memory.embedding.is_(None))
        return int((await self.session.execute(statement)).scalar_one())

    async def needing_embedding_texts(self, model: str, *, after_id: int, limit: int) -> list[MemoryText]:
        """Memories without a vector from ``model``, in id order after ``after_id`` (resumable batches), with all
        that their embedded text is made of (content, speaker, context)."""
        statement = (
            select(Memory.id, Memory.content, Memory.speaker_name, Memory.context)
            .where(Memory.id > after_id, _not_embedded_with(model))
            .order_by(Memory.id)
            .limit(limit)
        )
        return [MemoryText(*row) for row in (await self.session.execute(statement)).all()]

    async def count_needing_embedding(self, model: str) -> int:
        """How many memories have no vector from ``model`` (none at all, or another model's)."""
        statement = select(func.count()).select_from(Memory).where(_not_embedded_with(model))
        return int((await self.session.execute(statement)).scalar_one())

    async def models_in_use(self) -> dict[str | None, int]:
        """How many memories each embedding model made (None: not embedded yet)."""
        statement = select(Memory.embedding_model, func.count()).group_by(Memory.embedding_model)
        return {row[0]: int(row[1]) for row in (await self.session.execute(statement)).all()}

    async def by_vector(
        self, query: FloatVector, scope: RecallScope, *, model: str, limit: int, exclude_message_ids: Sequence[int]
    ) -> list[MemoryRow]:
        """The ``limit`` memories closest to ``query`` (cosine), nearest first."""
        if dialect_name(self.session) == "postgresql":
            parameters = {
                "model": model,
                "excluded": list(exclude_message_ids),
                "query": query,
                "candidates": limit * VECTOR_CANDIDATES_PER_RESULT,
                "limit": limit,
            }
            if scope.guild_id is not None:
                statement, parameters["guild_id"] = _NEAREST_IN_GUILD, scope.guild_id
            else:
                statement, parameters["user_id"] = _NEAREST_IN_DMS, scope.user_id
            return [MemoryRow(*row) for row in (await execute_plain(self.session, statement, parameters)).all()]
        conditions = [scope_filter(scope), Memory.embedding_model == model, Memory.embedding.is_not(None)]
        if exclude_message_ids:
            conditions.append(Memory.message_id.is_(None) | Memory.message_id.not_in(exclude_message_ids))
        # SQLite: exact search in NumPy over the rows in scope (vectors are unit length: dot = cosine).
        rows = (await self.session.execute(select(Memory.id, Memory.embedding).where(*conditions))).all()
        pairs = [(int(row[0]), row[1]) for row in rows if row[1] is not None]
        if not pairs:
            return []
        similarity = np.stack([vector for _, vector in pairs]) @ query.astype(np.float32)
        nearest = [pairs[i][0] for i in np.argsort(-similarity, kind="stable")[:limit]]
        found = await self.fetch(nearest)
        return [found[memory_id] for memory_id in nearest if memory_id in found]

    async def by_words(
        self, terms: Sequence[str], scope: RecallScope, *, limit: int, exclude_message_ids: Sequence[int]
    ) -> list[MemoryRow]:
        """The ``limit`` memories that best match any of ``terms`` (full-text search, BM25), best first."""
        if not terms:
            return []
        if dialect_name(self.session) == "postgresql":
            return await self._bm25_postgresql(terms, scope, limit, exclude_message_ids)
        return await self._bm25_sqlite(terms, scope, limit, exclude_message_ids)

    async def _bm25_sqlite(
        self, terms: Sequence[str], scope: RecallScope, limit: int, exclude_message_ids: Sequence[int]
    ) -> list[MemoryRow]:
        """BM25 as on PostgreSQL, with FTS5 finding the matches: each word counts by its rarity among the
        memories in ``scope`` (counted at each search: the FTS5 index reads a word's matches whatever the
        scope), discounted in longer texts (in words, relative to the average of the memories found).

        FTS5's own ``bm25()`` takes its statistics (memories, each word's matches, average length) from the
        whole table: another guild's talk would move how this one's memories rank."""
        parameters: dict[str, object]
        if scope.guild_id is not None:
            in_scope, parameters = _SQLITE_IN_GUILD, {"guild_id": scope.guild_id}
        else:
            in_scope, parameters = _SQLITE_IN_DMS, {"user_id": scope.user_id}
        for i, term in enumerate(terms):
            parameters[f"match_{i}"] = '"' + term.replace('"', "") + '"'
        counting = " UNION ALL ".join(
            [_SQLITE_TERM_COUNT.format(term=i, scope=in_scope) for i in range(len(terms))]
            + [f"SELECT -1, count(*) FROM memories WHERE {in_scope}"]
        )
        counts = {
            int(term): int(documents)
            for term, documents in await execute_plain(self.session, text(counting), parameters)
        }
        total = counts.pop(-1, 0)
        held = [i for i in range(len(terms)) if counts.get(i, 0) > 0]
        if not held:
            return []
        for i in held:
            parameters[f"weight_{i}"] = inverse_document_frequency(counts[i], total)
        excluded = ""
        if exclude_message_ids:
            excluded = " AND (memories.message_id IS NULL OR memories.message_id NOT IN :excluded)"
            parameters["excluded"] = list(exclude_message_ids)
        statement = text(
            _SQLITE_BM25.format(
                hits=" UNION ALL ".join(_SQLITE_TERM_HITS.format(term=i) for i in held),
                scope=in_scope + excluded,
                columns=_ROW_SQL,
            )
        ).columns(*_ROW_COLUMNS)
        if exclude_message_ids:
            statement = statement.bindparams(bindparam("excluded", expanding=True))
        rows = await execute_plain(self.session, statement, {**parameters, "limit": limit})
        return [MemoryRow(*row) for row in rows.all()]

    async def _bm25_postgresql(
        self, terms: Sequence[str], scope: RecallScope, limit: int, exclude_message_ids: Sequence[int]
    ) -> list[MemoryRow]:
        """BM25 over the stored tsvectors, as SQLite's FTS5 ranks: each query word counts by its rarity among
        the memories in ``scope`` (``memory_words``, kept per scope by triggers), discounted in longer texts
        (relative to the average length of the memories found, all in scope). Nothing said in another scope
        moves how a scope's memories rank.

        Only the rarest words are looked up (:data:`WORD_SEARCH_BUDGET`, see
        :func:`~bot.domain.recall.words_to_search`); the others still score the memories found. The vector
        search weighs every word."""
        if scope.guild_id is not None:
            in_scope = {"guild_id": scope.guild_id, "user_id": 0}
        else:
            in_scope = {"guild_id": 0, "user_id": scope.user_id}
        counts = {
            str(lexeme): int(documents)
            for lexeme, documents in await execute_plain(
                self.session, _WORD_COUNTS, {"query": " ".join(terms), **in_scope}
            )
        }
        total = counts.pop("", 0)
        searched = words_to_search(counts, WORD_SEARCH_BUDGET)
        if not searched:
            return []
        lexemes = list(counts)
        parameters = {
            "words": " | ".join(_tsquery_lexeme(lexeme) for lexeme in searched),
            "lexemes": lexemes,
            "weights": [inverse_document_frequency(counts[lexeme], total) for lexeme in lexemes],
            "excluded": list(exclude_message_ids),
            "limit": limit,
        }
        if scope.guild_id is not None:
            statement, parameters["guild_id"] = _BM25_IN_GUILD, scope.guild_id
        else:
            statement, parameters["user_id"] = _BM25_IN_DMS, scope.user_id
        return [MemoryRow(*row) for row in (await execute_plain(self.session, statement, parameters)).all()]

    async def rewrite_message_memory(self, message_id: int, content: str) -> bool:
        """The memory of a turn whose text changed (a regenerated reply shown instead): written anew, without a
        vector (the embedding worker makes one), so its text, words and vector always agree. False when the
        turn has no memory (memory off, or an empty turn)."""
        old = await self.session.scalar(select(Memory).where(Memory.message_id == message_id, Memory.kind == "message"))
        if old is None:
            return False
        renewed = NewMemory(
            kind=old.kind,
            content=content,
            scope=old.scope,
            created_at=old.created_at,
            user_id=old.user_id,
            guild_id=old.guild_id,
            channel_id=old.channel_id,
            channel_name=old.channel_name,
            conversation_id=old.conversation_id,
            message_id=old.message_id,
            speaker_name=old.speaker_name,
            context=old.context,
            importance=old.importance,
        )
        await self.session.delete(old)
        await self.session.flush()
        await self.add_many([renewed], None, None)
        return True

    async def fold_word_counts(self) -> int:
        """PostgreSQL: move the word counts' changes that storing and deleting memories appended into the counts
        (migration 0013); returns how many counts changed. Storing a memory only appends, so writers never wait
        on each other's counts; this runs off the reply path. SQLite's FTS5 index needs nothing of the kind."""
        if dialect_name(self.session) != "postgresql":
            return 0
        return int(await self.session.scalar(text("SELECT memory_words_fold()")) or 0)

    async def neighbours(
        self, ids: Sequence[int], scope: RecallScope, *, turns: int, exclude_message_ids: Sequence[int]
    ) -> tuple[list[Neighbour], dict[int, MemoryRow]]:
        """The message memories up to ``turns`` turns before and after each of ``ids`` in its conversation (a
        memory without a conversation has none), with their rows: only those ``scope`` may recall, and not
        those of ``exclude_message_ids`` (which still count as turns in between)."""
        if not ids or turns < 1:
            return [], {}
        backend = dialect_name(self.session)
        parameters: dict[str, Any] = {"turns": turns}
        if backend == "postgresql":
            parameters.update(ids=list(ids), excluded=list(exclude_message_ids))
        else:
            parameters.update(ids=json.dumps(list(ids)), excluded=json.dumps(list(exclude_message_ids)))
        if scope.guild_id is not None:
            parameters["guild_id"] = scope.guild_id
        else:
            parameters["user_id"] = scope.user_id
        statement = _NEAR[(backend, scope.guild_id is not None)]
        near = list((await execute_plain(self.session, statement, parameters)).all())
        # Nearest first on each side: ids falling before a memory, rising after it.
        near.sort(key=lambda row: (row[0], row[1], row[1] * row[2]))
        found: list[Neighbour] = []
        rows: dict[int, MemoryRow] = {}
        for (of, _side), group in itertools.groupby(near, key=lambda row: (row[0], row[1])):
            for distance, row in enumerate(group, start=1):
                if row[-1]:
                    found.append(Neighbour(int(of), int(row[2]), distance))
                    rows[int(row[2])] = MemoryRow(*row[2:-1])
        return found, rows

    async def speaker_names(self, scope: RecallScope) -> tuple[set[str], set[str]]:
        """The names of everyone whose words ``scope`` may recall (as their memories were stored), and those of
        them that only Hearth's replies were said under (its persona's, its cast's): voices, not people."""
        statement = (
            select(Memory.speaker_name, Message.role)
            .outerjoin(Message, Message.id == Memory.message_id)
            .where(scope_filter(scope), Memory.speaker_name.is_not(None))
            .distinct()
        )
        rows = [(name, role) for name, role in (await self.session.execute(statement)).all() if name]
        names = {name for name, _ in rows}
        return names, names - {name for name, role in rows if role != "assistant"}

    async def channel_name_of(self, conversation_id: int) -> str | None:
        """The channel's name as its messages were remembered (Discord names are not stored elsewhere)."""
        statement = (
            select(Memory.channel_name)
            .where(Memory.conversation_id == conversation_id, Memory.channel_name.is_not(None))
            .order_by(Memory.id.desc())
            .limit(1)
        )
        return await self.session.scalar(statement)

    async def fetch(self, ids: Sequence[int]) -> dict[int, MemoryRow]:
        if not ids:
            return {}
        statement = select(*_ROW_COLUMNS).where(Memory.id.in_(ids))
        return {row[0]: MemoryRow(*row) for row in (await self.session.execute(statement)).all()}

    async def prune(self, *, older_than: datetime, max_importance: float, limit: int) -> int:
        """Delete up to ``limit`` message memories said before ``older_than`` and not recalled since, of at most
        ``max_importance``; summaries and knowledge stay. Returns how many went: fewer than ``limit`` when no
        more were due (or another process was pruning them)."""
        due = (
            Memory.kind == "message",
            Memory.created_at < older_than,
            Memory.last_accessed_at < older_than,
            Memory.importance <= max_importance,
        )
        # The conditions again on the rows deleted: one recalled since the batch was chosen stays.
        batch = select(Memory.id).where(*due).limit(limit).scalar_subquery()
        statement = delete(Memory).where(Memory.id.in_(batch), *due).returning(Memory.id)
        return len((await self.session.execute(statement)).all())

    async def touch(self, ids: Sequence[int], *, now: datetime) -> None:
        """Mark memories as recalled at ``now`` (for pruning: what is used is kept), to the day: a memory marked
        within :data:`RECALL_MARK_RESOLUTION` is left as it is. Every mark rewrites the whole row, vector and
        index entries included, which cost more than the reply it followed when done at each recall."""
        if ids:
            parameters = {"ids": list(ids), "now": now, "marked_before": now - RECALL_MARK_RESOLUTION}
            await execute_plain(self.session, _TOUCH, parameters)
