"""Filling memories' vectors from the database, in the background, oldest first.

A turn's memory is written with its message, in the same transaction, without a vector (see
``ConversationService``): the word search finds it at once, and nothing Hearth means to remember lives only in
this process. This worker embeds what has no vector yet. Each batch claims the oldest rows without one (on
PostgreSQL locked with ``FOR UPDATE SKIP LOCKED`` until the batch commits, so several processes sharing the
database each embed rows of their own, never the same one), embeds them and stores the vectors.

Replies come first: the embedder encodes a batch's texts one at a time and puts a query someone waits for
before the next one, so a reply never waits for a whole batch.
While the backlog is short, a batch also waits until no reply is being prepared (or ``yield_s``, see
``ReplyActivity``), so stragglers join it; once a full batch is waiting, batches follow each other without that
pause, or a busy bot would fall behind for good.

The worker sleeps until woken (:meth:`wake`: a turn stored, an erasure) or ``poll_s`` passes (rows written by
another process, or left by a failure). Stopping leaves unembedded rows where they are; the next start simply
continues with them. Nothing is queued in memory, so nothing can be dropped.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from bot.db.engine import DATABASE_FAULTS, Database
from bot.db.repositories.memories import MemoryRepository, MemoryText
from bot.domain.memory_text import embedding_text
from bot.domain.retry import Backoff
from bot.llm.embeddings import Embedder, Vectors
from bot.services.activity import ReplyActivity

log = logging.getLogger(__name__)


class EmbeddingWorker:
    def __init__(
        self,
        database: Database,
        embedder: Embedder,
        *,
        batch_size: int = 32,
        activity: ReplyActivity | None = None,
        yield_s: float = 0.25,
        poll_s: float = 5.0,
        fold_every_s: float = 1.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.database = database
        self.embedder = embedder
        self.batch_size = batch_size  # rows per claim: one read and one write for that many vectors
        self.activity = activity
        self.yield_s = yield_s
        self.poll_s = poll_s
        self.fold_every_s = fold_every_s
        self.embedded = 0  # vectors this worker stored so far
        self._wake = asyncio.Event()
        self._asked = 0  # bumped by wake(); a pass that finds nothing after it answers every flush() up to it
        self._answered = 0
        self._idle = asyncio.Condition()
        self._stopping = False
        self._worker: asyncio.Task[None] | None = None
        self._size = batch_size  # halved after the embedder fails a batch, to find a row it cannot embed
        self._skipped: set[int] = set()  # rows the embedder failed on alone: left for the next start

    def start(self) -> None:
        if self._worker is None:
            self._stopping = False
            self._worker = asyncio.create_task(self._run(), name="embedding-worker")

    def wake(self) -> None:
        """New rows without a vector were written (or a vector cleared): embed them soon."""
        self._asked += 1
        self._wake.set()

    async def backlog(self) -> int:
        """How many memories wait for a vector, in the database (every process's, not only this one's); read
        once more on a fresh connection when the pooled one was dropped (the database restarted)."""

        async def count() -> int:
            async with self.database.reading() as session:
                return await MemoryRepository(session).count_unembedded()

        return await self.database.once_more_if_dropped(count)

    async def flush(self) -> None:
        """Wait until every memory written before this call has its vector (for tests and the bench); when the
        worker is not running, embed them here."""
        if self._worker is None:
            while await self.embed_batch():
                pass
            return
        self.wake()
        target = self._asked
        async with self._idle:
            await self._idle.wait_for(lambda: self._answered >= target or self._worker is None)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the batch under way (within ``timeout_s``), then stop; what is left waits for the next start."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(worker)
        except TimeoutError:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        async with self._idle:
            self._idle.notify_all()

    async def _run(self) -> None:
        backoff = Backoff(base_s=0.5, cap_s=30.0)
        failures = 0
        behind = False  # the last batch was full: more are waiting
        folded = time.monotonic()  # when the word counts were last folded
        while not self._stopping:
            asked = self._asked
            try:
                if self.activity is not None and not behind:
                    await self.activity.until_quiet(self.yield_s)
                size = self._size
                done = await self.embed_batch()
                behind = done >= size
            except DATABASE_FAULTS as exc:  # a restart or a dropped connection: the rows wait in the database
                failures += 1
                log.warning("could not embed memories (%s); retrying", exc)
                await self._sleep(backoff.delay(failures))
                continue
            except Exception:  # the embedder: halve the batch until the row it cannot embed is alone
                failures += 1
                log.exception("could not embed a batch of %d memories; retrying", self._size)
                await self._sleep(backoff.delay(failures))
                continue
            failures = 0
            # At most every ``fold_every_s``: each fold is a transaction of several statements, and folding each
            # time the worker caught up cost PostgreSQL about a millisecond per message (the counts are exact
            # without it: see MemoryRepository.fold_word_counts). An idle worker folds at its next poll.
            if self.database.backend == "postgresql" and time.monotonic() >= folded + self.fold_every_s:
                await self._fold_word_counts()
                folded = time.monotonic()
            if behind:
                continue
            # Caught up: a claim short of a full batch took every row without a vector written before it began
            # (bar rows another process's worker holds), so no second claim is needed to find that out.
            async with self._idle:
                self._answered = max(self._answered, asked)
                self._idle.notify_all()
            await self._sleep(self.poll_s)

    async def _sleep(self, seconds: float) -> None:
        """Until woken, stopped, or ``seconds`` pass."""
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _fold_word_counts(self) -> None:
        """The word counts' changes that stored memories appended, folded in (see migration 0013): off the reply
        path, in a short transaction of its own. A failure leaves them for the next pass."""
        try:
            async with self.database.session() as session:
                await MemoryRepository(session).fold_word_counts()
        except DATABASE_FAULTS as exc:
            log.warning("could not fold the memories' word counts (%s); trying again later", exc)

    async def embed_batch(self) -> int:
        """Claim, embed and store one batch of the oldest memories without a vector; returns how many."""
        repository = MemoryRepository
        if self.database.backend == "postgresql":
            # One short transaction: the claimed rows stay locked while they are embedded, so another process's
            # worker skips them; a crash rolls back and leaves them to the next claim.
            async with self.database.session() as session:
                rows = await repository(session).claim_unembedded(self._size, skip=self._skipped)
                if rows:
                    await repository(session).fill_embeddings(rows, await self._vectors(rows), self.embedder.model_name)
        else:
            # SQLite has one process (and one worker): read, embed with no transaction open (a read transaction
            # held across the embedding could not become the write after another writer), then write.
            async with self.database.reading() as session:
                rows = await repository(session).claim_unembedded(self._size, skip=self._skipped)
            if rows:
                vectors = await self._vectors(rows)
                async with self.database.session() as session:
                    await repository(session).fill_embeddings(rows, vectors, self.embedder.model_name)
        self.embedded += len(rows)
        self._size = self.batch_size
        return len(rows)

    async def _vectors(self, rows: Sequence[MemoryText]) -> Vectors:
        texts = [embedding_text(row.speaker_name, row.content, row.context) for row in rows]
        try:
            return await self.embedder.embed(texts)
        except Exception:
            if len(rows) == 1:
                log.error("memory %s cannot be embedded; it waits for the next start", rows[0].id)
                self._skipped.add(rows[0].id)
            self._size = max(1, len(rows) // 2)
            raise
