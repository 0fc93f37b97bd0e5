"""Chat: every message the bot can see goes to the conversation service, which decides whether to answer."""

import logging

import discord
from discord.ext import commands

from bot.discord.client import HearthBot
from bot.discord.people import author_of
from bot.discord.render import MessageReply
from bot.domain.images import Attachment, shown_images
from bot.domain.triggers import MessageSignals
from bot.observability.logs import log_context
from bot.services.incoming import IncomingMessage, Place

log = logging.getLogger(__name__)


def _place(message: discord.Message) -> Place:
    guild = message.guild
    return Place(
        channel_id=message.channel.id,
        channel_name=getattr(message.channel, "name", None),
        guild_id=guild.id if guild else None,
        guild_name=guild.name if guild else None,
    )


def _replies_to(message: discord.Message, user: discord.abc.User) -> bool:
    reference = message.reference
    resolved = reference.resolved if reference else None
    return isinstance(resolved, discord.Message) and resolved.author.id == user.id


def incoming_from(message: discord.Message, me: discord.ClientUser) -> IncomingMessage:
    signals = MessageSignals(
        text=message.content,
        author_id=message.author.id,
        channel_id=message.channel.id,
        is_dm=message.guild is None,
        author_is_bot=message.author.bot,
        is_webhook=message.webhook_id is not None,
        is_own=message.author.id == me.id,
        mentions_bot=me in message.mentions,
        replies_to_bot=_replies_to(message, me),
    )
    return IncomingMessage(
        author=author_of(message.author),
        place=_place(message),
        text=message.clean_content,
        created_at=message.created_at,
        signals=signals,
        message_id=message.id,
        image_urls=shown_images([Attachment(a.url, a.content_type, a.size) for a in message.attachments]),
    )


class Chat(commands.Cog):
    def __init__(self, bot: HearthBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if me is None or not (message.content or message.attachments):
            return
        container = self.bot.container
        guild_id = message.guild.id if message.guild else None
        with log_context(
            guild_id=guild_id, channel_id=message.channel.id, user_id=message.author.id, message_id=message.id
        ):
            try:
                incoming = incoming_from(message, me)
                with self.bot.replying.track():
                    if self.bot.accepting:
                        outcome = await container.conversation.handle(incoming, MessageReply(message))
                    else:  # stopping: kept, and answered by the next start's catch-up
                        outcome = await container.conversation.keep(incoming)
                container.metrics.turn(outcome.status, own_ms=outcome.own_ms, model_ms=outcome.model_ms)
            except Exception:  # the service keeps what it can and says what it could not; nothing more to do here
                log.exception(
                    "could not handle message %s (guild %s, channel %s)", message.id, guild_id, message.channel.id
                )


async def setup(bot: HearthBot) -> None:
    await bot.add_cog(Chat(bot))
