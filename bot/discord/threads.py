"""The channel a thread is in, which the thread's rules are its channel's (blocked, chat channel, persona)."""

import asyncio
import logging
from collections import OrderedDict

import discord

from bot.discord.render import DISCORD_FAILURES

log = logging.getLogger(__name__)


class ThreadParents:
    """The channel of each thread discord.py has not cached (an old one, absent from the gateway's list of active
    threads; a private one Hearth was just added to), which its messages come without: asked of Discord once per
    thread, and remembered, the latest ``size``. Where Discord cannot say (an outage), the message is taken for one
    in a channel of its own, as before, and the thread's next message asks again."""

    def __init__(self, client: discord.Client, *, size: int = 10_000) -> None:
        self.client = client
        self.size = size
        self._known: OrderedDict[int, asyncio.Task[int | None]] = OrderedDict()

    async def of(self, channel: discord.abc.Messageable) -> int | None:
        """The channel ``channel`` is a thread in; None for a channel of its own, or a DM."""
        if isinstance(channel, discord.Thread):
            return channel.parent_id
        if not isinstance(channel, discord.PartialMessageable) or channel.guild_id is None:
            return None  # a channel discord.py knows, or a DM: no thread
        return await self._uncached(channel.id)

    async def _uncached(self, channel_id: int) -> int | None:
        looked_up = self._known.get(channel_id)
        if looked_up is None:  # one lookup per thread, however many of its messages arrive while it runs
            looked_up = asyncio.create_task(self._look_up(channel_id), name=f"thread-parent-{channel_id}")
            self._known[channel_id] = looked_up
            while len(self._known) > self.size:
                self._known.popitem(last=False)
        self._known.move_to_end(channel_id)
        return await asyncio.shield(looked_up)  # a message's handler cancelled leaves it to the others waiting

    async def _look_up(self, channel_id: int) -> int | None:
        try:
            channel = await self.client.fetch_channel(channel_id)
        except DISCORD_FAILURES as exc:
            self._known.pop(channel_id, None)  # the failure may pass: asked again at the thread's next message
            log.warning(
                "could not tell which channel %s is a thread of (%s): its channel's rules are not applied there",
                channel_id,
                exc,
            )
            return None
        return channel.parent_id if isinstance(channel, discord.Thread) else None
