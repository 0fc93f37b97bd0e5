"""Memories: writing them, and the two searches the retriever fuses (vectors and words), within a scope."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import ColumnElement, and_, func, insert, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Memory
from bot.db.repositories._dialect import dialect_name
from bot.db.types import FloatVector, utcnow
from bot.domain.recall import RecallScope


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
    importance: float = 0.5


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


def scope_filter(scope: RecallScope) -> ColumnElement[bool]:
    """The rows a reply in ``scope`` may recall (see :class:`RecallScope`)."""
    if scope.guild_id is not None:
        return Memory.guild_id == scope.guild_id
    return and_(Memory.user_id == scope.user_id, Memory.scope.in_(("dm", "global")))


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
                "importance": m.importance,
                "embedding": None if vectors is None else vectors[i],
                "embedding_model": None if vectors is None else model,
                "created_at": m.created_at,
                "updated_at": m.created_at,
                "last_accessed_at": m.created_at,
            }
            for i, m in enumerate(memories)
        ]
        result = await self.session.execute(insert(Memory).returning(Memory.id, sort_by_parameter_order=True), rows)
        return list(result.scalars().all())

    async def set_embeddings(self, ids: Sequence[int], vectors: FloatVector, model: str) -> None:
        await self.session.execute(
            update(Memory),
            [{"id": memory_id, "embedding": vectors[i], "embedding_model": model} for i, memory_id in enumerate(ids)],
        )

    async def needing_embedding(self, model: str, *, after_id: int, limit: int) -> list[tuple[int, str]]:
        """Memories without a vector from ``model``, in id order after ``after_id`` (resumable batches)."""
        statement = (
            select(Memory.id, Memory.content)
            .where(Memory.id > after_id, (Memory.embedding_model.is_(None)) | (Memory.embedding_model != model))
            .order_by(Memory.id)
            .limit(limit)
        )
        return [(row[0], row[1]) for row in (await self.session.execute(statement)).all()]

    async def models_in_use(self) -> dict[str | None, int]:
        """How many memories each embedding model made (None: not embedded yet)."""
        statement = select(Memory.embedding_model, func.count()).group_by(Memory.embedding_model)
        return {row[0]: int(row[1]) for row in (await self.session.execute(statement)).all()}

    async def by_vector(
        self, query: FloatVector, scope: RecallScope, *, model: str, limit: int, exclude_message_ids: Sequence[int]
    ) -> list[int]:
        """Ids of the ``limit`` memories closest to ``query`` (cosine), nearest first."""
        conditions = [scope_filter(scope), Memory.embedding_model == model]
        if exclude_message_ids:
            conditions.append(Memory.message_id.is_(None) | Memory.message_id.not_in(exclude_message_ids))
        if dialect_name(self.session) == "postgresql":
            # Filtered HNSW scans keep searching until enough rows pass the filter (pgvector 0.8).
            await self.session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            distance = Memory.embedding.op("<=>")(query)
            statement = select(Memory.id).where(*conditions).order_by(distance).limit(limit)
            return list((await self.session.scalars(statement)).all())
        # SQLite: exact search in NumPy over the rows in scope (vectors are unit length: dot = cosine).
        rows = (await self.session.execute(select(Memory.id, Memory.embedding).where(*conditions))).all()
        pairs = [(int(row[0]), row[1]) for row in rows if row[1] is not None]
        if not pairs:
            return []
        similarity = np.stack([vector for _, vector in pairs]) @ query.astype(np.float32)
        best = np.argsort(-similarity, kind="stable")[:limit]
        return [pairs[i][0] for i in best]

    async def by_words(
        self, terms: Sequence[str], scope: RecallScope, *, limit: int, exclude_message_ids: Sequence[int]
    ) -> list[int]:
        """Ids of the ``limit`` memories that best match any of ``terms`` (full-text search), best first."""
        if not terms:
            return []
        conditions = [scope_filter(scope)]
        if exclude_message_ids:
            conditions.append(Memory.message_id.is_(None) | Memory.message_id.not_in(exclude_message_ids))
        if dialect_name(self.session) == "postgresql":
            document = func.to_tsvector(literal_column("'english'::regconfig"), Memory.content)
            query = func.to_tsquery(literal_column("'english'::regconfig"), " | ".join(terms))
            statement = (
                select(Memory.id)
                .where(document.op("@@")(query), *conditions)
                .order_by(func.ts_rank_cd(document, query, 1).desc(), Memory.id)
                .limit(limit)
            )
            return list((await self.session.scalars(statement)).all())
        match = " OR ".join('"' + term.replace('"', "") + '"' for term in terms)
        fts = text("SELECT rowid AS id, bm25(memories_fts) AS rank FROM memories_fts WHERE memories_fts MATCH :match")
        found = fts.columns(id=Memory.id.type, rank=Memory.importance.type).subquery("found")
        statement = (
            select(Memory.id)
            .join(found, found.c.id == Memory.id)
            .where(*conditions)
            .order_by(found.c.rank, Memory.id)
            .limit(limit)
        )
        return list((await self.session.scalars(statement, {"match": match})).all())

    async def fetch(self, ids: Sequence[int]) -> dict[int, MemoryRow]:
        if not ids:
            return {}
        statement = select(
            Memory.id,
            Memory.kind,
            Memory.content,
            Memory.speaker_name,
            Memory.channel_name,
            Memory.message_id,
            Memory.importance,
            Memory.created_at,
        ).where(Memory.id.in_(ids))
        return {row[0]: MemoryRow(*row) for row in (await self.session.execute(statement)).all()}

    async def touch(self, ids: Sequence[int]) -> None:
        """Mark memories as just recalled (for pruning: what is used is kept)."""
        if ids:
            await self.session.execute(update(Memory).where(Memory.id.in_(ids)).values(last_accessed_at=utcnow()))
