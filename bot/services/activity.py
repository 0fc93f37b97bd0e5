"""Replies first: background work (remembering, learning) holds back while someone waits for an answer.

On a small host the embedding model, the database and the event loop share two or three cores; a memory
batch being embedded or a learning batch being written while a reply recalls makes that reply slower. The
conversation service marks each reply from its arrival until the model is called
(:meth:`ReplyActivity.begin`); background workers call :meth:`ReplyActivity.until_quiet` before each batch,
with a timeout so a busy bot never starves them.
"""

import asyncio
import contextlib
from collections.abc import Callable, Iterator


class ReplyActivity:
    def __init__(self) -> None:
        self._busy = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @property
    def replies_in_progress(self) -> int:
        return self._busy

    def begin(self) -> Callable[[], None]:
        """Mark a reply as being prepared; returns the function that ends it (calling it again does nothing)."""
        self._busy += 1
        self._quiet.clear()
        ended = False

        def end() -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            self._busy -= 1
            if self._busy == 0:
                self._quiet.set()

        return end

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Mark a reply as being prepared for the duration of the block."""
        end = self.begin()
        try:
            yield
        finally:
            end()

    async def until_quiet(self, timeout_s: float) -> None:
        """Return once no reply is being prepared, or after ``timeout_s`` whatever happens."""
        if self._quiet.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._quiet.wait()
