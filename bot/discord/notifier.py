"""DiscordNotifier: delivers proactive messages (reminders, greetings, follow-ups) for the EventService.

To the event's channel when Hearth can see it and may write there, and the user is still in its server
(addressed to the user, who is pinged), else by DM to the user. The message may ping its user and nobody else:
a reminder's title is what its user wrote and a greeting or follow-up is the model's words, and neither may
ping another member, a role or everyone.

Discord's errors become :class:`DeliveryFailed`: retryable for what may pass (5xx, rate limits, network), not
for what will not (DMs closed, user or channel gone, missing permissions). ``maybe_sent`` when the message may
have gone out all the same (a timeout or a dropped connection once the request had left, or a failure after the
first piece of a long message): the event service never sends those again.
"""

import logging
from typing import TYPE_CHECKING, Literal

import aiohttp
import discord

from bot.discord.render import DISCORD_FAILURES
from bot.domain.chunking import split_message
from bot.services.events import DeliveryFailed

if TYPE_CHECKING:
    from discord.abc import Messageable

log = logging.getLogger(__name__)

# What sending can raise that is Discord's or the network's doing; anything else is a bug and propagates.
_SEND_ERRORS = DISCORD_FAILURES


class DiscordNotifier:
    def __init__(self, bot: discord.Client) -> None:
        self.bot = bot

    async def deliver(self, *, user_discord_id: int, channel_id: int | None, text: str) -> Literal["channel", "dm"]:
        """Send ``text`` to ``channel_id`` (if Hearth may write there), else by DM; raises DeliveryFailed."""
        channel = await self._writable_channel(channel_id, user_discord_id) if channel_id is not None else None
        if isinstance(channel, discord.abc.GuildChannel | discord.Thread) and not await _still_in(
            channel.guild, user_discord_id
        ):
            log.info("user %s has left guild %s; sending by DM", user_discord_id, channel.guild.id)
            channel = None
        only_them = _only_pinging(user_discord_id)
        if channel is not None:
            addressed = text if isinstance(channel, discord.DMChannel) else f"<@{user_discord_id}> {text}"
            try:
                await self._send(channel, addressed, only_them)
                return "dm" if isinstance(channel, discord.DMChannel) else "channel"
            except discord.Forbidden as exc:  # the cached permissions were stale: try the DM instead
                log.info("may not write in channel %s (%s); sending by DM", channel_id, exc.text or exc.status)
            except discord.NotFound as exc:  # deleted, and the cache had not heard yet: as for an unknown channel
                log.info("channel %s is gone (%s); sending by DM", channel_id, exc.text or exc.status)
            except _PartlySent as partly:
                raise _delivery_failed(partly.error, f"channel {channel_id}", partly=True) from partly.error
            except _SEND_ERRORS as exc:
                raise _delivery_failed(exc, f"channel {channel_id}") from exc
        try:
            user = self.bot.get_user(user_discord_id) or await self.bot.fetch_user(user_discord_id)
            dm = await user.create_dm()
        except _SEND_ERRORS as exc:  # nothing was sent yet
            raise _delivery_failed(exc, f"DM to user {user_discord_id}", sending=False) from exc
        try:
            await self._send(dm, text, only_them)
        except _PartlySent as partly:
            raise _delivery_failed(partly.error, f"DM to user {user_discord_id}", partly=True) from partly.error
        except _SEND_ERRORS as exc:
            raise _delivery_failed(exc, f"DM to user {user_discord_id}") from exc
        return "dm"

    async def _writable_channel(self, channel_id: int, user_discord_id: int) -> "Messageable | None":
        """The channel when Hearth may send there; None when it is gone, unwritable or not text.

        From the cache, or from Discord when the cache does not hold it: after a start, or a new gateway
        session, the cache is empty until the gateway has sent every server. Without the cache's member to
        reckon permissions with, the channel is tried, and a refusal sends the message by DM."""
        channel = self.bot.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(channel_id)
            except (discord.Forbidden, discord.NotFound, discord.InvalidData):  # hidden, gone, or of no known type
                return None
            except _SEND_ERRORS as exc:  # nothing was sent yet
                raise _delivery_failed(exc, f"channel {channel_id}", sending=False) from exc
            if isinstance(channel, discord.Thread) and channel.archived:  # left closed: a post would reopen it
                return None
        if isinstance(channel, discord.DMChannel):
            recipient = channel.recipient
            return channel if recipient is not None and recipient.id == user_discord_id else None
        if not isinstance(channel, discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.StageChannel):
            return None
        me: discord.Member | None = channel.guild.me  # typed as always there; not before the guild is cached
        if me is None:
            return channel
        permissions = channel.permissions_for(me)
        allowed = (
            permissions.send_messages_in_threads if isinstance(channel, discord.Thread) else permissions.send_messages
        )
        return channel if allowed else None

    @staticmethod
    async def _send(channel: "Messageable", text: str, mentions: discord.AllowedMentions) -> None:
        """Send the pieces in order; a failure after the first raises :class:`_PartlySent` (the earlier pieces
        are out: the message must not be sent again)."""
        for number, piece in enumerate(split_message(text)):
            try:
                await channel.send(piece, allowed_mentions=mentions)
            except _SEND_ERRORS as exc:
                if number == 0:
                    raise
                raise _PartlySent(exc) from exc


async def _still_in(guild: discord.Guild, user_discord_id: int) -> bool:
    """Whether the user is still a member of ``guild``, asked of Discord: without the members intent no word
    comes when someone leaves, and the cache keeps them. True when Discord cannot say (the channel is tried)."""
    try:
        await guild.fetch_member(user_discord_id)
    except discord.NotFound:
        return False
    except _SEND_ERRORS as exc:
        log.info("could not ask whether user %s is in guild %s (%s)", user_discord_id, guild.id, exc)
    return True


def _only_pinging(user_discord_id: int) -> discord.AllowedMentions:
    return discord.AllowedMentions(
        everyone=False, roles=False, users=[discord.Object(user_discord_id)], replied_user=False
    )


class _PartlySent(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _delivery_failed(exc: Exception, where: str, *, partly: bool = False, sending: bool = True) -> DeliveryFailed:
    """The DeliveryFailed for a Discord or network error (one of ``_SEND_ERRORS``). Discord's answer means the
    piece was not posted; a timeout or a dropped connection while ``sending`` may have posted it (a failure to
    connect did not)."""
    if isinstance(exc, discord.Forbidden | discord.NotFound):
        return DeliveryFailed(
            f"{where}: {exc.status} {exc.text or 'forbidden or gone'}", retryable=False, maybe_sent=partly
        )
    if isinstance(exc, discord.HTTPException):
        retryable = isinstance(exc, discord.DiscordServerError) or exc.status >= 500 or exc.status == 429
        return DeliveryFailed(
            f"{where}: Discord answered {exc.status} {exc.text}".rstrip(), retryable=retryable, maybe_sent=partly
        )
    in_flight = sending and not isinstance(exc, aiohttp.ClientConnectorError)
    return DeliveryFailed(
        f"{where}: {type(exc).__name__} {exc}".rstrip(), retryable=True, maybe_sent=partly or in_flight
    )
