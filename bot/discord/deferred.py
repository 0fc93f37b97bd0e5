"""Progress and result of a deferred command whose work may take longer than Discord keeps its token.

Discord takes follow-ups and edits of an interaction's response for 15 minutes after the interaction, then
refuses them (401, "Invalid Webhook Token"). A re-embed, a backup or a long lore document can take longer than
that on a large database, so :class:`DeferredAnswer` gives the result (or what went wrong) to the person who
ran the command by DM once the token has expired, in place of the "thinking…" message before that.

Progress is shown by editing the "thinking…" message, best effort: one edit at a time, the newest text
waiting behind it; a refused edit is logged once and ends the progress, for the work goes on regardless. The
result waits for the edit in flight, so no late progress ever covers it.
"""

import asyncio
import logging
from types import TracebackType
from typing import Self

import discord

from bot.discord.tree import SOMETHING_WENT_WRONG, cut, explain, tell_by_dm, token_refused

log = logging.getLogger(__name__)


class DeferredAnswer:
    """Progress and result of a deferred command; use as ``async with DeferredAnswer(interaction) as answer``.

    An error raised inside the block is answered here as the command tree would (our own errors as they are
    written, anything else logged and apologised for), through the same way as the result."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self.interaction = interaction
        self._waiting: str | None = None  # the newest progress not shown yet
        self._showing: asyncio.Task[None] | None = None
        self._stopped = False  # the result is being given, or a progress edit was refused

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> bool:
        await self._stop_progress()
        if not isinstance(error, Exception):
            return False  # no error, or a cancellation: nothing to tell
        message = explain(error)
        if message is None:
            command = self.interaction.command.qualified_name if self.interaction.command else "?"
            log.error(
                "command /%s failed (guild %s, channel %s, user %s, interaction %s)",
                command,
                self.interaction.guild_id,
                self.interaction.channel_id,
                self.interaction.user.id,
                self.interaction.id,
                exc_info=error,
            )
            message = SOMETHING_WENT_WRONG
        await self.finish(message)
        return True

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
        """Give the result: in place of "thinking…" while the token lasts, else by DM to whoever ran the command."""
        await self._stop_progress()
        if not self.interaction.is_expired():
            try:
                await self.interaction.edit_original_response(content=cut(text))
                return
            except discord.HTTPException as exc:
                if not token_refused(exc):
                    raise
        await tell_by_dm(self.interaction, text)
