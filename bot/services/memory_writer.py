"""Turning stored messages into memories, in the background, in batches.

A reply never waits for its message to be embedded: the conversation service hands each stored turn to
:meth:`MemoryWriter.submit` and moves on. One worker embeds what has gathered (one forward pass per batch)
and stores it. Whatever is still queued when the bot stops, or was dropped because the queue was full, is
found again at the next start by :meth:`MemoryWriter.catch_up`: a message without a memory is the marker.
"""

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, replace

from bot.db.engine import Database
from bot.db.repositories.memories import MemoryRepository, NewMemory
from bot.domain.memory_text import context_line
from bot.services.activity import ReplyActivity
from bot.services.memory import MemoryService

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Stop:
    """Queued after the last item by :meth:`MemoryWriter.stop`: the worker ends when it reaches it."""


class MemoryWriter:
    def __init__(
        self,
        memory: MemoryService,
        database: Database,
        *,
        batch_size: int = 4,
        queue_size: int = 10_000,
        catch_up_limit: int = 5_000,
        activity: ReplyActivity | None = None,
        yield_s: float = 0.25,
    ) -> None:
        self.memory = memory
        self.database = database
        self.batch_size = batch_size
        self.catch_up_limit = catch_up_limit
        self.activity = activity
        self.yield_s = yield_s  # the longest a batch waits for replies being prepared (see ReplyActivity)
        self.written = 0  # memories stored by this writer so far
        self._queue: asyncio.Queue[NewMemory | _Stop] = asyncio.Queue(queue_size)
        self._worker: asyncio.Task[None] | None = None
        # conversation → its last turn as context for the next one (bounded: least recently used dropped).
        self._last_turn: OrderedDict[int, str] = OrderedDict()

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="memory-writer")

    def submit(self, memory: NewMemory) -> None:
        """Queue a stored turn (never waits). The turn before it in its conversation becomes its context."""
        if memory.conversation_id is not None and memory.context is None:
            previous = self._last_turn.get(memory.conversation_id)
            self._remember_turn(memory.conversation_id, context_line(memory.speaker_name or "you", memory.content))
            memory = replace(memory, context=previous)
        try:
            self._queue.put_nowait(memory)
        except asyncio.QueueFull:
            log.warning("memory queue full; message %s is left for the next catch-up", memory.message_id)

    def forget_context(self) -> None:
        """Drop the remembered last turns (the context of the next memories): after a user is erased, nothing
        they said may ride along into someone else's memory."""
        self._last_turn.clear()

    async def catch_up(self) -> int:
        """Queue stored messages that have no memory yet (newest first, up to ``catch_up_limit``)."""
        async with self.database.session() as session:
            missing = await MemoryRepository(session).messages_without_memory(limit=self.catch_up_limit)
        for memory in missing:
            self.submit(memory)
        if missing:
            log.info("catching up on %d stored messages not yet remembered", len(missing))
        return len(missing)

    async def flush(self) -> None:
        """Wait until everything queued so far is stored (for tests and shutdown)."""
        await self._queue.join()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Store what is queued (within ``timeout_s``; the rest is caught up at the next start), then stop."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        await self._queue.put(_Stop())
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(worker)
        except TimeoutError:
            log.warning("stopping with %d memories unwritten; they are caught up at the next start", self.backlog)
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    def _remember_turn(self, conversation_id: int, line: str) -> None:
        self._last_turn[conversation_id] = line
        self._last_turn.move_to_end(conversation_id)
        while len(self._last_turn) > 4096:
            self._last_turn.popitem(last=False)

    async def _run(self) -> None:
        while True:
            batch: list[NewMemory] = []
            stop = False
            item = await self._queue.get()
            if self.activity is not None:
                await self.activity.until_quiet(self.yield_s)  # what arrives meanwhile joins this batch
            while True:
                if isinstance(item, _Stop):
                    stop = True
                else:
                    batch.append(item)
                if stop or len(batch) >= self.batch_size or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            try:
                await self._write(batch)
            finally:
                for _ in range(len(batch) + stop):
                    self._queue.task_done()
            if stop:
                return

    async def _write(self, batch: list[NewMemory]) -> None:
        if not batch:
            return
        try:
            ids = await self.memory.remember(batch)
        except Exception:  # the embedder or the database: these messages have no memory, so catch-up finds them
            log.exception("could not store %d memories (messages %s …)", len(batch), batch[0].message_id)
            return
        self.written += len(ids)
