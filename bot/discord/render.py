"""Rendering replies on Discord: the ReplyTarget for a message, and mention safety."""

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

import discord

# What Hearth itself sends (commands' answers, reminders) pings no one but users, and only where it means to.
SAFE_MENTIONS = discord.AllowedMentions(everyone=False, roles=False, users=True, replied_user=True)
# Model output pings nobody: not everyone/here, not roles, not users, not even the person replied to.
MODEL_MENTIONS = discord.AllowedMentions.none()


class _StreamedReply:
    """A reply shown in ``channel``: the first piece opened by :meth:`_open` (and edited while it streams), the
    rest sent after it."""

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self.channel = channel
        self.first: discord.Message | None = None

    def typing(self) -> AbstractAsyncContextManager[None]:
        return self.channel.typing()

    async def _open(self, text: str) -> discord.Message:
        raise NotImplementedError

    async def preview(self, text: str) -> None:
        if self.first is None:
            self.first = await self._open(text)
        else:
            self.first = await self.first.edit(content=text, allowed_mentions=MODEL_MENTIONS)

    async def send(self, pieces: Sequence[str]) -> list[int]:
        if not pieces:
            return []
        if self.first is None:
            self.first = await self._open(pieces[0])
        elif self.first.content != pieces[0]:
            self.first = await self.first.edit(content=pieces[0], allowed_mentions=MODEL_MENTIONS)
        sent = [self.first.id]
        for piece in pieces[1:]:
            sent.append((await self.channel.send(piece, allowed_mentions=MODEL_MENTIONS)).id)
        return sent


class MessageReply(_StreamedReply):
    """Shows a reply to ``message``: the first piece as a Discord reply to it."""

    def __init__(self, message: discord.Message) -> None:
        super().__init__(message.channel)
        self.message = message

    async def _open(self, text: str) -> discord.Message:
        return await self.message.reply(text, allowed_mentions=MODEL_MENTIONS, mention_author=False)


class ChannelReply(_StreamedReply):
    """Shows a reply in ``channel`` when there is no Message object to reply to (catching up after a restart):
    the first piece as a Discord reply to ``reply_to`` if that message still exists, else as a plain message."""

    def __init__(self, channel: discord.abc.Messageable, channel_id: int, reply_to: int | None) -> None:
        super().__init__(channel)
        self.reference = (
            discord.MessageReference(message_id=reply_to, channel_id=channel_id, fail_if_not_exists=False)
            if reply_to is not None
            else None
        )

    async def _open(self, text: str) -> discord.Message:
        if self.reference is None:
            return await self.channel.send(text, allowed_mentions=MODEL_MENTIONS)
        return await self.channel.send(
            text, reference=self.reference, allowed_mentions=MODEL_MENTIONS, mention_author=False
        )
