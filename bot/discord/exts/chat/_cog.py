"""Chat: every message the bot can see goes to the conversation service, which decides whether to answer."""

import asyncio
import functools
import logging
from collections.abc import Mapping

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.client import HearthBot
from bot.discord.people import ForwardedNames, author_of, files_of, replied_webhook_name, said_and_quoted
from bot.discord.render import MessageReply, may_send
from bot.discord.reply_buttons import reply_view
from bot.discord.webhooks import CharacterReply
from bot.domain.images import shown_images
from bot.domain.triggers import MessageSignals
from bot.observability.logs import log_context
from bot.observability.metrics import Metrics
from bot.services.conversation import ConversationService
from bot.services.incoming import IncomingMessage, Place
from bot.services.privacy import PrivacyService

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


def _mentions_own_role(message: discord.Message, me: discord.ClientUser) -> bool:
    """Whether the message mentions the role Discord made for Hearth (named after it, offered beside it in the
    mention list): people who pick it mean Hearth."""
    return any(role.tags is not None and role.tags.bot_id == me.id for role in message.role_mentions)


def incoming_from(
    message: discord.Message,
    client: discord.Client,
    me: discord.ClientUser,
    names: Mapping[int, str] | None = None,
    *,
    parent_channel_id: int | None = None,
) -> IncomingMessage:
    """``message`` as the conversation service takes it; ``names``: people its forward mentions, looked up (see
    :class:`ForwardedNames`); ``parent_channel_id``: the channel it was said in when that is a thread (see
    :class:`ThreadParents`: discord.py knows it only for the threads it has cached)."""
    signals = MessageSignals(
        text=message.content,
        author_id=message.author.id,
        channel_id=message.channel.id,
        is_dm=message.guild is None,
        author_is_bot=message.author.bot,
        is_webhook=message.webhook_id is not None,
        is_own=message.author.id == me.id,
        mentions_bot=me in message.mentions or _mentions_own_role(message, me),
        replies_to_bot=_replies_to(message, me),
        author_role_ids=frozenset(role.id for role in getattr(message.author, "roles", ())),
        replied_to_webhook_name=replied_webhook_name(message),
        parent_channel_id=parent_channel_id,
    )
    text, quoted = said_and_quoted(message, client, names)
    return IncomingMessage(
        author=author_of(message.author),
        place=_place(message),
        text=text,
        created_at=message.created_at,
        signals=signals,
        message_id=message.id,
        image_urls=shown_images(files_of(message, client)),
        quoted=quoted,
    )


class Chat(commands.Cog):
    conversation_group = app_commands.Group(name="conversation", description="This channel's conversation with Hearth")

    def __init__(
        self, bot: HearthBot, conversation: ConversationService, privacy: PrivacyService, metrics: Metrics
    ) -> None:
        self.bot = bot  # its user, and whether it is stopping
        self.conversation = conversation
        self.privacy = privacy
        self.metrics = metrics
        self.forwarded_names = ForwardedNames(bot)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        said = message.content or message.attachments or message.stickers or message.poll or message.message_snapshots
        if me is None or not said:
            return
        if message.is_system():  # Discord's notices (a thread started, a channel followed): their text is no one's
            return
        if not may_send(message.channel):  # no answer could be shown: the model is not asked for one
            log.debug("not answering in channel %s: no permission to send messages there", message.channel.id)
            return
        self.bot.taken_live(message.id)  # before it is stored: the catch-up must not answer it too
        guild_id = message.guild.id if message.guild else None
        with log_context(
            guild_id=guild_id, channel_id=message.channel.id, user_id=message.author.id, message_id=message.id
        ):
            try:
                incoming = await self._incoming(message, me)
                with self.bot.replying.track():
                    if self.bot.accepting:
                        target = MessageReply(
                            message, reply_view, functools.partial(CharacterReply, message.channel, self.bot.webhooks)
                        )
                        try:
                            outcome = await self.conversation.handle(incoming, target)
                        except asyncio.CancelledError:  # a stop ran out of time: nothing left half-written
                            await target.cut_short()
                            raise
                    else:  # stopping: kept, and answered by the next start's catch-up
                        outcome = await self.conversation.keep(incoming)
                self.metrics.turn(outcome.status, own_ms=outcome.own_ms, model_ms=outcome.model_ms)
            except Exception:  # the service keeps what it can and says what it could not; nothing more to do here
                log.exception(
                    "could not handle message %s (guild %s, channel %s)", message.id, guild_id, message.channel.id
                )

    async def _incoming(self, message: discord.Message, me: discord.ClientUser) -> IncomingMessage:
        names = await self.forwarded_names.of(message)
        parent = await self.bot.thread_parents.of(message.channel)
        return incoming_from(message, self.bot, me, names, parent_channel_id=parent)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """Someone deleted a message (theirs, or a moderator did, Hearth's own replies included): Hearth forgets
        it, as they would expect."""
        await self._forget_deleted([payload.message_id], payload.channel_id)

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self._forget_deleted(sorted(payload.message_ids), payload.channel_id)

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        """An admin deleted a channel: the turns waiting in it end unanswered (discord.py tells of its threads
        apart, as deleted threads)."""
        self.conversation.channel_gone(channel.id)

    @commands.Cog.listener()
    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        """A thread was deleted (itself, or with its channel): the turns waiting in it end unanswered."""
        self.conversation.channel_gone(payload.thread_id)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """Someone edited a message: Hearth keeps the new text, and forgets the images it removed. Its own replies
        (edited as they stream) and webhooks' are not people's; an update without content is a link preview
        arriving."""
        message = payload.message
        me = self.bot.user
        if me is None or "content" not in payload.data or message.webhook_id is not None or message.author.id == me.id:
            return
        try:
            async with self.conversation.between_turns(payload.channel_id):  # as a deletion is: see _forget_deleted
                edited = await self._incoming(message, me)
                kept = await self.conversation.as_kept(edited)  # without the words of people blocked there
                followed = await self.privacy.follow_edited_message(message.id, kept.text, kept.image_urls)
        except Exception:
            log.exception("could not follow the edit of message %s in channel %s", message.id, payload.channel_id)
            return
        if followed:
            log.info("followed the edit of message %s in channel %s", message.id, payload.channel_id)

    async def _forget_deleted(self, message_ids: list[int], channel_id: int) -> None:
        try:
            # A turn under way stores its reply, and what the reply's memory quotes, once the reply is out: the
            # deletion waits for it (or a reply deleted that quickly, or the words it quotes, would be kept), and
            # the channel's next turn waits for the deletion.
            async with self.conversation.between_turns(channel_id):
                forgotten = await self.privacy.forget_deleted_messages(message_ids)
        except Exception:  # the event is gone once missed: say so, the person can still use /memory
            log.exception("could not forget %d deleted messages of channel %s", len(message_ids), channel_id)
            return
        if forgotten:
            log.info("forgot %d deleted messages of channel %s", forgotten, channel_id)

    @conversation_group.command(name="reset", description="Start this channel's conversation afresh")
    async def conversation_reset(self, interaction: discord.Interaction) -> None:
        """Any member, in the channel: the next message starts with no history. What Hearth remembers long-term
        and knows of people stays (forgotten with /memory forget)."""
        if interaction.channel_id is None:
            return
        ended = await self.conversation.reset(interaction.channel_id)
        said = (
            "Fresh start: I'll pick up from your next message without the conversation so far. What I remember "
            "about people stays (see /memory)."
            if ended
            else "There's no conversation going on here to reset."
        )
        await interaction.response.send_message(said, ephemeral=True)
