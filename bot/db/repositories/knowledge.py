"""Guild knowledge documents: their rows, and the link from their chunks (knowledge memories) to them.

A document's chunks are rows of ``memories`` pointing at it (``document_id``, ON DELETE CASCADE): deleting the
document deletes them, their vectors and their word-index entries. Every read and delete names the guild, so
one guild's admins never reach another guild's lore.
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import KnowledgeDocument, Memory


@dataclass(frozen=True, slots=True)
class DocumentRow:
    id: int
    guild_id: int
    uploaded_by_user_id: int | None
    source_name: str
    mime_type: str
    size_bytes: int
    status: str  # pending | processing | completed | failed
    error_message: str | None
    chunk_count: int
    created_at: datetime


_ROW_COLUMNS = (
    KnowledgeDocument.id,
    KnowledgeDocument.guild_id,
    KnowledgeDocument.uploaded_by_user_id,
    KnowledgeDocument.source_name,
    KnowledgeDocument.mime_type,
    KnowledgeDocument.size_bytes,
    KnowledgeDocument.status,
    KnowledgeDocument.error_message,
    KnowledgeDocument.chunk_count,
    KnowledgeDocument.created_at,
)  # a DocumentRow, in order


def _document(row: Row[*tuple[Any, ...]]) -> DocumentRow:
    return DocumentRow(**row._mapping)


def _in_guild(guild_id: int, document_id: int) -> ColumnElement[bool]:
    return (KnowledgeDocument.id == document_id) & (KnowledgeDocument.guild_id == guild_id)


class KnowledgeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        guild_id: int,
        uploaded_by_user_id: int | None,
        source_name: str,
        mime_type: str,
        size_bytes: int,
        now: datetime,
    ) -> DocumentRow:
        """Store a document as ``processing``: listed while its chunks are being stored."""
        statement = (
            insert(KnowledgeDocument)
            .values(
                guild_id=guild_id,
                uploaded_by_user_id=uploaded_by_user_id,
                source_name=source_name,
                mime_type=mime_type,
                size_bytes=size_bytes,
                status="processing",
                created_at=now,
                updated_at=now,
            )
            .returning(*_ROW_COLUMNS)
        )
        return _document((await self.session.execute(statement)).one())

    async def set_status(
        self, document_id: int, status: str, *, now: datetime, chunk_count: int | None = None, error: str | None = None
    ) -> DocumentRow | None:
        """Set a document's status and its error (cleared when None), its chunk count too when given; returns
        the document as it now is, None if it is gone (removed, or replaced by a newer upload)."""
        values: dict[str, object] = {"status": status, "error_message": error, "updated_at": now}
        if chunk_count is not None:
            values["chunk_count"] = chunk_count
        statement = (
            update(KnowledgeDocument)
            .where(KnowledgeDocument.id == document_id)
            .values(**values)
            .returning(*_ROW_COLUMNS)
        )
        row = (await self.session.execute(statement)).first()
        return None if row is None else _document(row)

    async def lock(self, document_id: int, *, now: datetime) -> bool:
        """Whether the document is still being processed (not removed, replaced or failed as stalled), holding it
        until the transaction ends so that it cannot be deleted while chunks are stored for it. Its
        ``updated_at`` becomes ``now``: an upload still storing chunks is never taken for a stalled one (see
        :meth:`fail_stalled`). A write rather than ``SELECT … FOR UPDATE``: on SQLite a SELECT runs outside the
        transaction, which only a write begins."""
        statement = (
            update(KnowledgeDocument)
            .where(KnowledgeDocument.id == document_id, KnowledgeDocument.status == "processing")
            .values(updated_at=now)
            .returning(KnowledgeDocument.id)
        )
        return (await self.session.execute(statement)).first() is not None

    async def fail_stalled(self, *, before: datetime, now: datetime, error: str) -> list[int]:
        """Mark failed the uploads still pending or processing that have not moved since ``before`` (their
        process stopped mid-way), deleting the passages they had stored; returns their ids."""
        statement = (
            update(KnowledgeDocument)
            .where(KnowledgeDocument.status.in_(("pending", "processing")), KnowledgeDocument.updated_at < before)
            .values(status="failed", error_message=error, chunk_count=0, updated_at=now)
            .returning(KnowledgeDocument.id)
        )
        stalled = list((await self.session.scalars(statement)).all())
        if stalled:
            await self.session.execute(delete(Memory).where(Memory.document_id.in_(stalled)))
        return stalled

    async def delete_chunks(self, document_id: int) -> None:
        """Delete a document's chunks, keeping the document."""
        await self.session.execute(delete(Memory).where(Memory.document_id == document_id))

    async def get(self, guild_id: int, document_id: int) -> DocumentRow | None:
        """One of the guild's documents (None if there is none with that id in that guild)."""
        row = (await self.session.execute(select(*_ROW_COLUMNS).where(_in_guild(guild_id, document_id)))).first()
        return None if row is None else _document(row)

    async def for_guild(self, guild_id: int) -> list[DocumentRow]:
        """The guild's documents, newest first."""
        statement = (
            select(*_ROW_COLUMNS)
            .where(KnowledgeDocument.guild_id == guild_id)
            .order_by(KnowledgeDocument.created_at.desc(), KnowledgeDocument.id.desc())
        )
        return [_document(row) for row in (await self.session.execute(statement)).all()]

    async def delete(self, guild_id: int, document_id: int) -> DocumentRow | None:
        """Delete one of the guild's documents and (by cascade) its chunks; returns it as it was, None if the
        guild has no such document."""
        statement = delete(KnowledgeDocument).where(_in_guild(guild_id, document_id)).returning(*_ROW_COLUMNS)
        row = (await self.session.execute(statement)).first()
        return None if row is None else _document(row)

    async def delete_earlier_named(self, guild_id: int, source_names: Collection[str], *, before_id: int) -> list[int]:
        """Delete the guild's documents named one of ``source_names`` uploaded before document ``before_id`` (with
        their chunks): what a newer upload of the same file replaces. Returns their ids."""
        if not source_names:
            return []
        statement = (
            delete(KnowledgeDocument)
            .where(
                KnowledgeDocument.guild_id == guild_id,
                KnowledgeDocument.source_name.in_(source_names),
                KnowledgeDocument.id < before_id,
            )
            .returning(KnowledgeDocument.id)
        )
        return list((await self.session.execute(statement)).scalars().all())
