"""Progress and result of a deferred command whose work takes a while (a re-embed, say).

Progress is shown by editing the "thinking…" message, best effort: one edit at a time, the newest text
waiting behind it; a refused edit is logged once and ends the progress, for the work goes on regardless. The
result waits for the edit in flight, so no late progress ever covers it.
"""

import asyncio
import logging
from types import TracebackType
from typing import Self

import discord

log = logging.getLogger(__name__)


class DeferredAnswer:
    """Progress and result of a deferred command; use as ``async with DeferredAnswer(interaction) as answer``."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self.interaction = interaction
        self._waiting: str | None = None  # the newest progress not shown yet
        self._showing: asyncio.Task[None] | None = None
        self._stopped = False  # the result is being given, or a progress edit was refused

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self._stop_progress()  # before an error is reported in its place

    def progress(self, text: str) -> None:
        """Show ``text`` in place of "thinking…" when the edit before it is done; never waits, never raises."""
        if self._stopped:
            return
        self._waiting = text
        if self._showing is None or self._showing.done():
            self._showing = asyncio.create_task(self._show_progress())

    async def _show_progress(self) -> None:
        while self._waiting is not None and not self._stopped:
            text, self._waiting = self._waiting, None
            if self.interaction.is_expired():
                self._stopped = True
                return
            try:
                await self.interaction.edit_original_response(content=text)
            except Exception as exc:  # progress is best effort: the result still comes
                self._stopped = True
                log.info("progress of interaction %s is no longer shown: %s", self.interaction.id, exc)

    async def _stop_progress(self) -> None:
        self._stopped = True
        if self._showing is not None:
            await asyncio.shield(self._showing)  # the edit in flight lands before the result, never after it

    async def finish(self, text: str) -> None:
        """Give the result in place of "thinking…"."""
        await self._stop_progress()
        await self.interaction.edit_original_response(content=text)
