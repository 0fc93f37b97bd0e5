"""Guild knowledge ("lore"): documents an admin uploads, kept as knowledge memories the guild's replies recall.

A document is read and cut into passages (``bot/domain/documents.py``) before anything is stored, so a file that
cannot be used leaves no trace. Its row is then stored as ``processing`` (visible in the guild's list while the
passages are embedded), the passages are embedded in batches, and then stored all at once, in the transaction
that makes the row ``completed``: replies never recall half a document. If a batch fails, nothing is stored and
the row is kept as ``failed`` with the reason, so the admin sees what happened.

A file uploaded under the name of one of the guild's documents (whatever its letters' case or Unicode form: see
:func:`~bot.domain.documents.document_key`) replaces it in that same transaction: replies recall the old version
until the new one is whole, then the new one alone, never both; a failed re-upload leaves the old lore in place.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath, PureWindowsPath

from bot.db.engine import Database
from bot.db.repositories.knowledge import DocumentRow, KnowledgeRepository
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.db.types import utcnow
from bot.domain.documents import DocumentError, chunk_document, decode_document, document_key
from bot.domain.memory_text import embedding_text
from bot.errors import HearthError
from bot.llm.embeddings import Vectors
from bot.services.memory import MemoryService

log = logging.getLogger(__name__)

Progress = Callable[[int, int], Awaitable[None]]

# Passages embedded at a time: large enough for the embedder to batch well, small enough that progress shows and
# that a failure loses little work.
EMBED_BATCH = 64
# Lore is what the guild chose to teach: a little above an ordinary memory (0.5).
KNOWLEDGE_IMPORTANCE = 0.6
# An upload that embedded no passage for this long was left half-done by a process that stopped; how often the
# bot looks for such uploads.
STALLED_AFTER = timedelta(minutes=30)
RECOVERY_INTERVAL = timedelta(minutes=10)
_MIME_TYPES = {".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain"}
_MAX_NAME_LENGTH = 255


class KnowledgeIngestError(HearthError):
    """A document could not be embedded and stored; it is listed as failed and none of its passages were kept."""


class _DocumentGone(Exception):
    """The document's row was deleted (removed, or replaced by a newer upload) while it was being processed."""


@dataclass(frozen=True, slots=True)
class DocumentView:
    id: int
    name: str
    status: str  # pending | processing | completed | failed
    chunk_count: int
    size_bytes: int
    created_at: datetime
    error: str | None  # why it failed, for a failed document

    @classmethod
    def of(cls, row: DocumentRow) -> "DocumentView":
        return cls(
            row.id, row.source_name, row.status, row.chunk_count, row.size_bytes, row.created_at, row.error_message
        )


def document_name(filename: str) -> str:
    """The name a document is kept (and replaced) under: the file's own name, without any folder, trimmed."""
    name = PureWindowsPath(PurePosixPath(filename.strip()).name).name.strip()
    return name[:_MAX_NAME_LENGTH]


def _mime_type(name: str, content_type: str | None) -> str:
    """The upload's declared type without parameters, when it declares a text type; else the one its extension
    implies (Discord often declares none, or a generic one)."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared.startswith("text/"):
        return declared[:100]
    return _MIME_TYPES.get(PurePosixPath(name.lower()).suffix, "text/plain")


def _passages(data: bytes, name: str) -> list[str]:
    """The passages of an uploaded file: up to a second or two of work for a large one, so run in a thread."""
    return chunk_document(decode_document(data, name))


def _gone(name: str) -> DocumentError:
    return DocumentError(f"“{name}” was removed or replaced while it was being learned.")


def _reason(exc: BaseException) -> str:
    """Why a document failed, as an admin may read it: our own errors say it; anything else is not shown."""
    if isinstance(exc, HearthError) and str(exc):
        return str(exc)
    if not isinstance(exc, Exception):
        return "the upload was interrupted (the bot was stopping, or the command was cancelled)"
    return f"an unexpected error ({type(exc).__name__}; see the bot's log)"


class KnowledgeService:
    def __init__(
        self,
        database: Database,
        memory: MemoryService,
        *,
        batch_size: int = EMBED_BATCH,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database = database
        self.memory = memory
        self.batch_size = batch_size
        self.clock = clock

    async def add(
        self,
        guild_id: int,
        uploaded_by: int | None,
        filename: str,
        content_type: str | None,
        data: bytes,
        *,
        progress: Progress | None = None,
    ) -> DocumentView:
        """Learn a document for a guild (``guild_id``: guilds.id; ``uploaded_by``: users.id), replacing the
        guild's document of the same name. ``progress(done, total)`` is awaited as passages are stored.

        Raises :class:`DocumentError` (nothing stored) for a file that cannot be used, and
        :class:`KnowledgeIngestError` (the document is kept as failed, without passages) when embedding or
        storing fails."""
        name = document_name(filename)
        chunks = await asyncio.to_thread(_passages, data, name)  # off the event loop: Discord's heartbeat goes on
        if not chunks:
            raise DocumentError(f"“{name}” has only headings, no text to learn from.")
        now = self.clock()
        async with self.database.session() as session:
            document = await KnowledgeRepository(session).add(
                guild_id=guild_id,
                uploaded_by_user_id=uploaded_by,
                source_name=name,
                mime_type=_mime_type(name, content_type),
                size_bytes=len(data),
                now=now,
            )
        try:
            embedded = await self._embed_chunks(document, chunks, now, progress)
            async with self.database.session() as session:  # the passages, the status and the replacement at once
                repository = KnowledgeRepository(session)
                if not await repository.lock(document.id, now=self.clock()):
                    raise _DocumentGone
                memories = MemoryRepository(session)
                for batch, vectors in embedded:
                    await memories.add_many(batch, vectors, self.memory.embedder.model_name)
                finished = await repository.set_status(
                    document.id, "completed", now=self.clock(), chunk_count=len(chunks)
                )
                if finished is None:
                    raise _DocumentGone
                key = document_key(name)
                names = {row.source_name for row in await repository.for_guild(guild_id)}
                same = [other for other in names if document_key(other) == key]
                replaced = await repository.delete_earlier_named(guild_id, same, before_id=document.id)
        except _DocumentGone:
            raise _gone(name) from None
        except BaseException as exc:  # cancellation too: a document is never left half-stored as "processing"
            stored = await self._fail(document.id, _reason(exc))
            if not isinstance(exc, Exception):
                raise
            log.warning("knowledge document %s (%r) failed", document.id, name, exc_info=exc)
            outcome = "It is listed as failed; none of it was kept." if stored else "Try again later."
            raise KnowledgeIngestError(
                f"“{name}” could not be learned: {_reason(exc).rstrip('. ')}. {outcome}"
            ) from exc
        if replaced:
            log.info("knowledge document %s (%r) replaced %s", document.id, name, replaced)
        return DocumentView.of(finished)

    async def _embed_chunks(
        self, document: DocumentRow, chunks: Sequence[str], now: datetime, progress: Progress | None
    ) -> list[tuple[list[NewMemory], Vectors]]:
        """Embed the passages a batch at a time, as chunks of the document to store (by the caller, all at once).

        After each batch the document is checked, and marked as moving (see :meth:`KnowledgeRepository.lock`): an
        upload removed meanwhile stops there, and one still embedding is never taken for a stalled one."""
        embedder = self.memory.embedder
        embedded: list[tuple[list[NewMemory], Vectors]] = []
        total = len(chunks)
        progress = _guarded(progress)
        await progress(0, total)
        for start in range(0, total, self.batch_size):
            batch = [
                NewMemory(
                    kind="knowledge",
                    content=chunk,
                    scope="guild",
                    created_at=now,
                    guild_id=document.guild_id,
                    speaker_name=None,
                    importance=KNOWLEDGE_IMPORTANCE,
                    document_id=document.id,
                )
                for chunk in chunks[start : start + self.batch_size]
            ]
            vectors = await embedder.embed([embedding_text(m.speaker_name, m.content, m.context) for m in batch])
            async with self.database.session() as session:
                if not await KnowledgeRepository(session).lock(document.id, now=self.clock()):
                    raise _DocumentGone
            embedded.append((batch, vectors))
            await progress(start + len(batch), total)
        return embedded

    async def _fail(self, document_id: int, reason: str) -> bool:
        """Mark a document failed and delete the passages stored so far; False if that could not be done (the
        document is gone, or the database is unreachable: then it is logged)."""
        try:
            async with self.database.session() as session:
                knowledge = KnowledgeRepository(session)
                if not await knowledge.set_status(document_id, "failed", now=self.clock(), chunk_count=0, error=reason):
                    return False
                await knowledge.delete_chunks(document_id)
            return True
        except Exception:
            log.exception("could not mark knowledge document %s as failed", document_id)
            return False

    async def recover(self, *, stalled_after: timedelta = STALLED_AFTER) -> int:
        """Uploads a stopped process left half-done are marked failed and their passages removed (an admin sees
        why in /knowledge list and uploads again). Only those that stored nothing for ``stalled_after``, so an
        upload in progress (in this process or another) is left alone. Run at start and every
        :data:`RECOVERY_INTERVAL`: a process started again within ``stalled_after`` of a crash would otherwise
        leave its half-done uploads listed as processing, their passages recalled, until its next start.
        Returns how many."""
        now = self.clock()
        async with self.database.session() as session:
            stalled = await KnowledgeRepository(session).fail_stalled(
                before=now - stalled_after, now=now, error="the bot stopped while learning it; upload it again"
            )
        if stalled:
            log.warning("%d knowledge uploads were interrupted by a stop; marked failed", len(stalled))
        return len(stalled)

    async def remove(self, guild_id: int, document_id: int) -> DocumentView | None:
        """Delete one of the guild's documents and all its passages; returns it as it was, or None when the guild
        has no document with that id (another guild's document is never touched)."""
        async with self.database.session() as session:
            row = await KnowledgeRepository(session).delete(guild_id, document_id)
        return None if row is None else DocumentView.of(row)

    # Last in the class: below this, ``list`` would name the method in annotations.
    async def list(self, guild_id: int) -> list[DocumentView]:
        """The guild's documents, newest first, whatever their status."""
        async with self.database.reading() as session:
            return [DocumentView.of(row) for row in await KnowledgeRepository(session).for_guild(guild_id)]


def _guarded(progress: Progress | None) -> Progress:
    """``progress``, made harmless: a report that fails (say, an expired Discord interaction) is logged and the
    reports stop, but the document is still learned."""
    broken = progress is None

    async def report(done: int, total: int) -> None:
        nonlocal broken
        if broken or progress is None:
            return
        try:
            await progress(done, total)
        except Exception:
            broken = True
            log.warning("knowledge progress report failed; no more reports for this document", exc_info=True)

    return report
